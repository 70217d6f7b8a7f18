"""Absence: report a stream that went silent, and its recovery.

Per key (``by``, default ``[source, name]``): when no event of the stream has
arrived for more than ``after`` seconds, the operator emits one ``stale``
event; when data returns it emits one ``recovered`` event. Silence is checked
on ``tick(now)``, so it is reported while nothing arrives, and on ``apply`` (a
late event first reports the silence it ends). A gap of exactly ``after`` is
not a silence: a sensor reporting every 5 min is fine with ``after: 5m``.

Which streams are watched: every key seen at least once, from its first
event on. A stream never seen is not reported — unless it is listed in
``expect``; then it is watched from the first time the operator is given
(its first tick or event), reported stale if it never shows up, and its
``last_seen`` tag reads ``never``. ``expect`` entries give a value for every
``by`` field, and ``by`` must include ``source`` and ``name`` (they become the
source and name of the events reported for the stream).

Every event passes through unchanged. The added events:

- source: the stream's source; name: ``event`` if set, else the stream's name
  + ``_absence`` (``temperature`` → ``temperature_absence``);
- value ``"stale"``, at the moment the silence exceeded ``after`` (last seen +
  ``after``), with tags ``after`` (seconds) and ``last_seen`` (RFC 3339, or
  ``never``);
- value ``"recovered"``, at the returning event's time and right after it,
  with tag ``silent_for`` (seconds since the stream was last seen, or since
  watching began);
- both also carry the stream's latest tags.

Events count at their own time, late ones too (older than the rule's clock:
see "Late events" in ``tidegate.rules.config``): the rule is ticked at its
clock right after a late event, so a stream first seen through an event more
than ``after`` older than the clock is reported stale at once, and a stale
stream whose data returns that old is reported ``recovered`` at the event's
time, then ``stale`` again at that time + ``after``. A stream's "last seen" is
the latest time of its events: an event no later than it (out of order, or
delivered late while newer ones already arrived) passes and changes nothing —
it ends no silence and starts none. Only a step back of the gateway clock (a
tick more than ``CLOCK_STEP_BACK``, 1 s, before the previous one, in a ``time:
processing`` rule) moves it back: a stream last seen after the new time counts
as seen at it, so its silence is measured from there instead of from a time
the clock will not reach again for as long as the step. Counters:
``went_stale``, ``recovered``; ``stale_now`` is the number of streams silent
now. ``flush`` emits nothing.

```yaml
rules:
  - name: sensor-silent
    absence: {after: 5m}
  - name: greenhouse-silent
    match: {source: greenhouse}
    absence:
      after: 2m
      expect:
        - {source: greenhouse, name: temperature}
        - {source: greenhouse, name: humidity}
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Self

from pydantic import Field, model_validator

from tidegate.config.types import Duration, Name
from tidegate.event import Event, new_event
from tidegate.rules.clock import CLOCK_STEP_BACK
from tidegate.rules.keys import KeyedBy, StreamKey, key_function
from tidegate.rules.operator import TimedOperator
from tidegate.rules.operators.range_check import number_text
from tidegate.timefmt import rfc3339

STALE = "stale"
RECOVERED = "recovered"


class AbsenceSection(KeyedBy):
    after: Duration = Field(
        gt=0, description="Silence longer than this makes a stream stale, e.g. `5m`."
    )
    expect: list[dict[str, str]] = Field(
        default_factory=list,
        description="Streams watched from the start even if never seen, each a mapping of "
        "the `by` fields, e.g. `{source: greenhouse, name: temperature}`.",
    )
    event: Name | None = Field(
        None, description="Name of the stale/recovered events; default: stream name + `_absence`."
    )

    @model_validator(mode="after")
    def _check_expect(self) -> Self:
        if not self.expect:
            return self
        missing_in_by = [f for f in ("source", "name") if f not in self.by]
        if missing_in_by:
            raise ValueError(
                "`expect` needs `by` to include source and name; missing "
                + ", ".join(missing_in_by)
            )
        wanted = set(self.by)
        for index, entry in enumerate(self.expect):
            missing = [f for f in self.by if f not in entry]
            unknown = sorted(set(entry) - wanted)
            if missing or unknown:
                problems = [f"missing {', '.join(missing)}"] if missing else []
                problems += [f"unknown {', '.join(unknown)}"] if unknown else []
                raise ValueError(
                    f"expect[{index}] must give exactly the `by` fields ({', '.join(self.by)}): "
                    + "; ".join(problems)
                )
        return self


@dataclass(slots=True)
class _Stream:
    source: str
    name: str
    tags: dict[str, str] | None
    last_seen: float | None
    """Time of the latest event; None for an expected stream not seen yet."""
    stale: bool = False


class Absence(TimedOperator, key="absence", order=10, schema=AbsenceSection, detector=True):
    """Absence: report a stream that went silent, and its recovery."""

    def __init__(self, config: AbsenceSection) -> None:
        self._by = config.by
        self._key = key_function(config.by)
        self._after = config.after
        self._event_name = config.event
        self._watch_started: float | None = None
        self._last_tick = -math.inf
        self._streams: dict[StreamKey, _Stream] = {
            tuple(entry[f] for f in config.by): self._expected_stream(entry)
            for entry in config.expect
        }
        # A lower bound of the earliest time a watched stream's silence exceeds ``after``:
        # a tick before it has nothing to do (the rule stage also ticks after every late
        # event, so a tick must not scan every stream).
        self._next_due = math.inf
        self.went_stale = 0
        self.recovered = 0

    @property
    def stale_now(self) -> int:
        """Streams silent now."""
        return sum(1 for stream in self._streams.values() if stream.stale)

    def counters(self) -> dict[str, int]:
        return {
            "went_stale": self.went_stale,
            "recovered": self.recovered,
            "stale_now": self.stale_now,
        }

    def apply(self, event: Event) -> list[Event]:
        now = event.time
        if self._watch_started is None:
            self._start_watching(now)
        key = self._key(event)
        stream = self._streams.get(key)
        if stream is None:
            self._streams[key] = _Stream(event.source, event.name, event.tags, now)
            self._next_due = min(self._next_due, now + self._after)
            return [event]
        if stream.last_seen is not None and not now > stream.last_seen:
            return [event]  # no later than the last: it ends no silence (NaN neither)
        out: list[Event] = []
        self._check(stream, now, out)  # a late event first reports the silence it ends
        silent_since = self._silent_since(stream)
        was_stale = stream.stale
        stream.source, stream.name, stream.tags = event.source, event.name, event.tags
        stream.last_seen, stream.stale = now, False
        self._next_due = min(self._next_due, now + self._after)
        out.append(event)
        if was_stale:
            self.recovered += 1
            gap = {"silent_for": number_text(now - silent_since)}
            out.append(self._status_event(stream, RECOVERED, gap, now))
        return out

    def tick(self, now: float) -> list[Event]:
        if self._watch_started is None:
            self._start_watching(now)
        elif now < self._last_tick - CLOCK_STEP_BACK:
            self._clock_stepped_back(now)
            self._last_tick = now
        self._last_tick = max(self._last_tick, now)  # jitter never moves it back
        if not now > self._next_due:
            return []
        out: list[Event] = []
        next_due = math.inf
        for stream in self._streams.values():
            self._check(stream, now, out)
            if not stream.stale:
                next_due = min(next_due, self._silent_since(stream) + self._after)
        self._next_due = next_due
        out.sort(key=lambda e: e.time)
        return out

    def _clock_stepped_back(self, now: float) -> None:
        """The gateway clock was set back to ``now``: what was seen after it, counts as seen
        at it (else a silence would go unreported until the clock is back where it was)."""
        assert self._watch_started is not None
        self._watch_started = min(self._watch_started, now)
        for stream in self._streams.values():
            if stream.last_seen is not None and stream.last_seen > now:
                stream.last_seen = now
        self._next_due = -math.inf  # rescan now: silences are measured from earlier times

    def _start_watching(self, now: float) -> None:
        self._watch_started = now
        if self._streams:  # expected streams: watched from now
            self._next_due = now + self._after

    def _silent_since(self, stream: _Stream) -> float:
        if stream.last_seen is not None:
            return stream.last_seen
        assert self._watch_started is not None  # set by the first apply or tick
        return self._watch_started

    def _check(self, stream: _Stream, now: float, out: list[Event]) -> None:
        if stream.stale:
            return
        since = self._silent_since(stream)
        if now - since <= self._after:
            return
        stream.stale = True
        self.went_stale += 1
        last_seen = "never" if stream.last_seen is None else rfc3339(stream.last_seen)
        detail = {"after": number_text(self._after), "last_seen": last_seen}
        out.append(self._status_event(stream, STALE, detail, since + self._after))

    def _status_event(
        self, stream: _Stream, value: str, detail: dict[str, str], at: float
    ) -> Event:
        tags = {**(stream.tags or {}), **detail}
        name = self._event_name or f"{stream.name}_absence"
        return new_event(stream.source, name, value, tags=tags, time=at)

    def _expected_stream(self, entry: dict[str, str]) -> _Stream:
        tags = {f.removeprefix("tags."): v for f, v in entry.items() if f.startswith("tags.")}
        return _Stream(entry["source"], entry["name"], tags or None, None)
