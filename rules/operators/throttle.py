"""Throttle: at most one event per interval per key.

Per key (``by``, default ``[source, name]``) an interval opens at the first
event of the key, lasts ``interval`` seconds (the event at exactly
``start + interval`` belongs to the next interval), and the next interval opens
at the next event after it — intervals follow the data, not a clock grid.

- ``keep: first`` (default) passes the event that opens an interval at once and
  drops the rest of the interval. No delay.
- ``keep: last`` holds events and passes only the latest of each interval when
  the interval ends: on ``tick`` once ``now`` reaches its end, or when the next
  event of the key arrives after it, whichever comes first. This delays events
  by up to ``interval``; ``flush`` (shutdown) passes what is still held. The
  held event is passed as it came (its own time and id).

Dropped events (for ``keep: last``: those superseded by a later one) are
counted in ``dropped``. An event older than the open interval's start (late,
or the clock stepped back) closes that interval and opens a new one, so a
clock jump never silences a stream. With ``keep: last``, an interval a late
event opens that has already ended by the rule's clock is released by the tick
that follows the event (see "Late events" in ``tidegate.rules.config``).

```yaml
rules:
  - name: slow-down
    match: {name: vibration}
    throttle: {interval: 10s, keep: first}
  - name: latest-per-minute
    throttle: {interval: 1m, keep: last}
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from tidegate.config.types import Duration
from tidegate.event import Event
from tidegate.rules.keys import KeyedBy, StreamKey, key_function
from tidegate.rules.operator import Operator, RuleTime, TimedOperator


class ThrottleSection(KeyedBy):
    interval: Duration = Field(
        gt=0, description="Length of an interval, e.g. `10s`; at most one event passes in each."
    )
    keep: Literal["first", "last"] = Field(
        "first",
        description="`first`: pass the interval's first event at once; `last`: pass its "
        "latest event when the interval ends.",
    )


class Throttle(Operator, key="throttle", order=33, schema=ThrottleSection):
    """Throttle: at most one event per interval per key."""

    @classmethod
    def build(cls, config: ThrottleSection, time: RuleTime = "processing") -> Throttle:
        return ThrottleFirst(config) if config.keep == "first" else ThrottleLast(config)

    def __init__(self, config: ThrottleSection) -> None:
        self._key = key_function(config.by)
        self._interval = config.interval
        self.dropped = 0

    def counters(self) -> dict[str, int]:
        return {"dropped": self.dropped}


class ThrottleFirst(Throttle):
    """Pass the first event of each interval, drop the rest: nothing waits for time."""

    def __init__(self, config: ThrottleSection) -> None:
        super().__init__(config)
        self._opened: dict[StreamKey, float] = {}

    def apply(self, event: Event) -> tuple[Event, ...]:
        key = self._key(event)
        opened = self._opened.get(key)
        if opened is not None and opened <= event.time < opened + self._interval:
            self.dropped += 1
            return ()
        self._opened[key] = event.time
        return (event,)


@dataclass(slots=True)
class _Held:
    opened: float
    event: Event


class ThrottleLast(Throttle, TimedOperator):
    """Hold the latest event of each interval; pass it when the interval ends."""

    def __init__(self, config: ThrottleSection) -> None:
        super().__init__(config)
        # Insertion order is opening order, so tick emits in the order intervals end.
        self._held: dict[StreamKey, _Held] = {}
        # A lower bound of the earliest end of a held interval: a tick before it has nothing
        # to do (the rule stage also ticks after every late event).
        self._next_due = math.inf

    def apply(self, event: Event) -> tuple[Event, ...]:
        key = self._key(event)
        held = self._held.get(key)
        if held is None:
            self._hold(key, event)
            return ()
        if held.opened <= event.time < held.opened + self._interval:
            held.event = event
            self.dropped += 1
            return ()
        # The interval is over (or the clock stepped back): its latest event goes out now.
        del self._held[key]
        self._hold(key, event)
        return (held.event,)

    def tick(self, now: float) -> tuple[Event, ...]:
        if now < self._next_due:
            return ()
        interval = self._interval
        due = [key for key, held in self._held.items() if now >= held.opened + interval]
        released = tuple(self._held.pop(key).event for key in due)
        self._next_due = min((h.opened + interval for h in self._held.values()), default=math.inf)
        return released

    def _hold(self, key: StreamKey, event: Event) -> None:
        self._held[key] = _Held(event.time, event)
        self._next_due = min(self._next_due, event.time + self._interval)

    def flush(self) -> tuple[Event, ...]:
        held, self._held = self._held, {}
        self._next_due = math.inf
        return tuple(h.event for h in held.values())
