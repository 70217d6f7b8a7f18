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
counted in ``dropped``. An event older than the open interval's start (the
clock stepped back) closes that interval and opens a new one, so a clock jump
never silences a stream.

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

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from tidegate.event import Event
from tidegate.rules.keys import KeyedBy, StreamKey, key_function
from tidegate.schema_types import Duration

KEY = "throttle"


class Config(KeyedBy):
    interval: Duration = Field(
        gt=0, description="Length of an interval, e.g. `10s`; at most one event passes in each."
    )
    keep: Literal["first", "last"] = Field(
        "first",
        description="`first`: pass the interval's first event at once; `last`: pass its "
        "latest event when the interval ends.",
    )


class ThrottleFirst:
    """Pass the first event of each interval, drop the rest."""

    def __init__(self, config: Config) -> None:
        self._key = key_function(config.by)
        self._interval = config.interval
        self._opened: dict[StreamKey, float] = {}
        self.dropped = 0

    def apply(self, event: Event) -> tuple[Event, ...]:
        key = self._key(event)
        opened = self._opened.get(key)
        if opened is not None and opened <= event.time < opened + self._interval:
            self.dropped += 1
            return ()
        self._opened[key] = event.time
        return (event,)

    def tick(self, now: float) -> tuple[Event, ...]:
        return ()

    def flush(self) -> tuple[Event, ...]:
        return ()


@dataclass(slots=True)
class _Held:
    opened: float
    event: Event


class ThrottleLast:
    """Hold the latest event of each interval; pass it when the interval ends."""

    def __init__(self, config: Config) -> None:
        self._key = key_function(config.by)
        self._interval = config.interval
        # Insertion order is opening order, so tick emits in the order intervals end.
        self._held: dict[StreamKey, _Held] = {}
        self.dropped = 0

    def apply(self, event: Event) -> tuple[Event, ...]:
        key = self._key(event)
        held = self._held.get(key)
        if held is None:
            self._held[key] = _Held(event.time, event)
            return ()
        if held.opened <= event.time < held.opened + self._interval:
            held.event = event
            self.dropped += 1
            return ()
        # The interval is over (or the clock stepped back): its latest event goes out now.
        del self._held[key]
        self._held[key] = _Held(event.time, event)
        return (held.event,)

    def tick(self, now: float) -> tuple[Event, ...]:
        due = [key for key, held in self._held.items() if now >= held.opened + self._interval]
        return tuple(self._held.pop(key).event for key in due)

    def flush(self) -> tuple[Event, ...]:
        held, self._held = self._held, {}
        return tuple(h.event for h in held.values())


def build(config: Config) -> ThrottleFirst | ThrottleLast:
    return ThrottleFirst(config) if config.keep == "first" else ThrottleLast(config)
