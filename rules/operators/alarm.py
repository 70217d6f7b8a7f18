"""Alarm: a threshold with hysteresis and duration, raised and cleared once per transition.

``above: 30, for: 60s, clear_below: 28`` reads "raise when the value has been
above 30 for 60 s; clear when it has been below 28 for ``clear_for``". Per key
(``by``, default ``[source, name]``) the alarm is either clear or raised:

- clear → raised: the value is strictly above ``above`` (strictly below
  ``below``) continuously for ``for`` seconds. A reading at or under the
  threshold resets the timer. With ``for: 0s`` the reading itself raises it.
- raised → clear: the value is strictly below ``clear_below`` (strictly above
  ``clear_above``) continuously for ``clear_for`` seconds. A reading at or over
  ``clear_below`` resets that timer. ``clear_below`` defaults to the threshold;
  a gap between the two (hysteresis) stops a value hovering near the threshold
  from flapping.

Between events, the last reading is taken to hold (sample and hold): a
duration completes on ``tick(now)`` even when no event arrives, and an event
arriving after the duration first completes it with the previous reading.

Every event passes through unchanged; the alarm adds one event per transition,
after the reading that completed it:

- source: the key's latest event's source; name: ``event`` if set, else the
  reading's name + ``_alarm`` (``temperature`` → ``temperature_alarm``);
- value: ``"raised"`` or ``"cleared"``;
- time: the moment the duration completed (condition start + ``for`` /
  ``clear_for``), whatever the tick cadence;
- tags: the reading's tags plus ``severity``, ``condition`` (``above`` or
  ``below``), ``threshold`` (the threshold crossed: the raise threshold for
  ``raised``, the clear threshold for ``cleared``) and ``reading`` (the value
  that completed the transition).

**Late readings** (older than the rule's clock: delayed in transit, uploaded
in a burst) are taken in the order they arrive: each holds from its own time
until the next reading arrives. The rule is ticked at its clock right after a
late reading (see "Late events" in ``tidegate.rules.config``), so a duration it
makes long enough by the clock completes at once: with ``for: 60s``, a reading
above the threshold stamped two minutes before the clock raises the alarm
right away, with the time the minute ended. A reading that arrives after that
cannot take the transition back, even one stamped earlier; the next
transition follows from it as usual. If an event's time is earlier than the
start of a running duration (a late reading, or the clock stepped back), the
duration restarts from that event.

Values that are not numbers (strings, booleans, mappings, NaN) pass
unchanged, are counted in ``non_numeric`` and do not change the alarm. ``flush`` emits
nothing: a raised alarm is not cleared by a shutdown. Counters: ``raised``,
``cleared``, ``non_numeric``; ``active`` is the number of keys raised now.

```yaml
rules:
  - name: greenhouse-hot
    match: {name: temperature}
    alarm:
      above: 30
      for: 60s
      clear_below: 28
      clear_for: 0s
      severity: warning
  - name: battery-low
    match: {name: battery}
    alarm: {below: 3.3, clear_above: 3.5, for: 5m, severity: critical, event: battery_low}
```
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import Field, model_validator

from tidegate.config.types import Duration, Name
from tidegate.event import Event, new_event
from tidegate.rules.keys import KeyedBy, StreamKey, key_function
from tidegate.rules.operator import TimedOperator
from tidegate.rules.operators.range_check import as_number, number_text

RAISED = "raised"
CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class Trigger:
    """An alarm's condition and its two thresholds: raise beyond one, clear beyond the other."""

    condition: Literal["above", "below"]
    threshold: float
    clear: float


class AlarmSection(KeyedBy):
    above: float | None = Field(
        None, description="Raise when the value is strictly above this (give `above` or `below`)."
    )
    below: float | None = Field(
        None, description="Raise when the value is strictly below this (give `above` or `below`)."
    )
    for_: Duration = Field(
        0.0,
        alias="for",
        ge=0,
        description="How long the condition must hold before the alarm is raised, e.g. `60s`.",
    )
    clear_below: float | None = Field(
        None,
        description="For `above` alarms: clear when the value is strictly below this. "
        "Defaults to `above`; set it lower for hysteresis.",
    )
    clear_above: float | None = Field(
        None,
        description="For `below` alarms: clear when the value is strictly above this. "
        "Defaults to `below`; set it higher for hysteresis.",
    )
    clear_for: Duration = Field(
        0.0, ge=0, description="How long the clear condition must hold before the alarm clears."
    )
    severity: Literal["info", "warning", "critical"] = Field(
        "warning", description="Severity tag of the alarm events: info, warning or critical."
    )
    event: Name | None = Field(
        None, description="Name of the alarm events; default: the reading's name + `_alarm`."
    )

    def trigger(self) -> Trigger:
        """The condition and its thresholds; ValueError when the keys do not make one."""
        above, below = self.above, self.below
        if above is not None and below is None:
            if self.clear_above is not None:
                raise ValueError("`clear_above` is for `below` alarms; use `clear_below`")
            clear = above if self.clear_below is None else self.clear_below
            if clear > above:
                raise ValueError(
                    f"`clear_below` ({clear:g}) must not be higher than `above` ({above:g})"
                )
            return Trigger("above", above, clear)
        if below is not None and above is None:
            if self.clear_below is not None:
                raise ValueError("`clear_below` is for `above` alarms; use `clear_above`")
            clear = below if self.clear_above is None else self.clear_above
            if clear < below:
                raise ValueError(
                    f"`clear_above` ({clear:g}) must not be lower than `below` ({below:g})"
                )
            return Trigger("below", below, clear)
        raise ValueError("give exactly one of `above` or `below`")

    @model_validator(mode="after")
    def _check_thresholds(self) -> Self:
        self.trigger()
        return self


@dataclass(slots=True)
class _KeyState:
    latest: Event
    """The key's latest numeric event: its reading holds until the next one."""
    reading: float
    raised: bool = False
    since: float | None = None
    """When the condition for the next transition (raise, or clear if raised) began."""


class Alarm(TimedOperator, key="alarm", order=50, schema=AlarmSection, detector=True):
    """Alarm: a threshold with hysteresis and duration, raised and cleared once per transition."""

    def __init__(self, config: AlarmSection) -> None:
        self._key = key_function(config.by)
        trigger = config.trigger()
        threshold, clear = trigger.threshold, trigger.clear
        self._raises: Callable[[float], bool]
        self._clears: Callable[[float], bool]
        if trigger.condition == "above":
            self._raises, self._clears = (lambda v: v > threshold), (lambda v: v < clear)
        else:
            self._raises, self._clears = (lambda v: v < threshold), (lambda v: v > clear)
        self._raise_for = config.for_
        self._clear_for = config.clear_for
        self._raise_tags = {
            "severity": config.severity,
            "condition": trigger.condition,
            "threshold": number_text(threshold),
        }
        self._clear_tags = {**self._raise_tags, "threshold": number_text(clear)}
        self._event_name = config.event
        self._states: dict[StreamKey, _KeyState] = {}
        # A lower bound of the earliest time a running duration completes: a tick before it
        # has nothing to do (the rule stage also ticks after every late event, so a tick
        # must not scan every key).
        self._next_due = math.inf
        self.raised = 0
        self.cleared = 0
        self.non_numeric = 0

    @property
    def active(self) -> int:
        """Keys whose alarm is raised now."""
        return sum(1 for state in self._states.values() if state.raised)

    def counters(self) -> dict[str, int]:
        return {
            "raised": self.raised,
            "cleared": self.cleared,
            "non_numeric": self.non_numeric,
            "active": self.active,
        }

    def apply(self, event: Event) -> list[Event]:
        number = as_number(event.value)
        if number is None or math.isnan(number):
            self.non_numeric += 1
            return [event]
        out: list[Event] = []
        key = self._key(event)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _KeyState(event, number)
        else:
            self._complete(state, event.time, out)  # the previous reading held until now
            state.latest, state.reading = event, number
        out.append(event)
        self._observe(state, event.time, out)
        return out

    def tick(self, now: float) -> list[Event]:
        if now < self._next_due:
            return []
        out: list[Event] = []
        next_due = math.inf
        for state in self._states.values():
            self._complete(state, now, out)
            if state.since is not None:
                next_due = min(next_due, state.since + self._needed(state))
        self._next_due = next_due
        out.sort(key=lambda e: e.time)
        return out

    def _observe(self, state: _KeyState, now: float, out: list[Event]) -> None:
        """Start, keep or reset the running duration for the key's new reading."""
        holds = self._clears(state.reading) if state.raised else self._raises(state.reading)
        if not holds:
            state.since = None
            return
        if state.since is None or now < state.since:  # new condition, or the clock stepped back
            state.since = now
            self._next_due = min(self._next_due, now + self._needed(state))
        self._complete(state, now, out)

    def _needed(self, state: _KeyState) -> float:
        return self._clear_for if state.raised else self._raise_for

    def _complete(self, state: _KeyState, now: float, out: list[Event]) -> None:
        """Make the transition if its condition has held long enough by ``now``."""
        if state.since is None:
            return
        needed = self._needed(state)
        if now - state.since < needed:
            return
        at = state.since + needed
        state.raised = not state.raised
        state.since = None
        if state.raised:
            self.raised += 1
            out.append(self._alarm_event(state, RAISED, self._raise_tags, at))
        else:
            self.cleared += 1
            out.append(self._alarm_event(state, CLEARED, self._clear_tags, at))

    def _alarm_event(
        self, state: _KeyState, value: str, alarm_tags: dict[str, str], at: float
    ) -> Event:
        latest = state.latest
        tags = {**(latest.tags or {}), **alarm_tags, "reading": number_text(state.reading)}
        name = self._event_name or f"{latest.name}_alarm"
        return new_event(latest.source, name, value, tags=tags, time=at)
