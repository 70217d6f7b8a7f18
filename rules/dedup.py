"""Dedup: drop an event whose key and value equal one passed within the window.

An event passes unless an event with the same key (``by``, default
``[source, name]``) and the same value (as ``on_change`` defines it: ``1`` and
``1.0`` are the same, ``true`` and ``1`` are not) passed in the last
``within`` seconds: it is a duplicate when ``passed <= time < passed + within``.
Only passed events open a window, so a value repeated every second with
``within: 60s`` passes once a minute. Dropped events are counted in ``dropped``.

Memory is bounded: an entry is forgotten once its window has passed (on
``apply`` and ``tick``), and at most ``max_entries`` are kept — beyond that the
oldest are forgotten early and counted in ``evicted`` (such a value may then
pass again inside its window). An event older than the entry's pass time (the
clock stepped back) is not a duplicate; it passes and restarts the window.

```yaml
rules:
  - name: no-repeats
    match: {source: rfid-reader}
    dedup: {within: 60s}
  - name: no-repeated-codes
    dedup: {within: 5m, by: [name], max_entries: 1000}
```
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from pydantic import Field

from tidegate.event import Event
from tidegate.rules.keys import KeyedBy, StreamKey, key_function
from tidegate.rules.on_change import value_identity
from tidegate.schema_types import Duration

KEY = "dedup"

_Entry = tuple[StreamKey, Hashable]


class Config(KeyedBy):
    within: Duration = Field(
        gt=0, description="Window, e.g. `60s`: a repeat of a value passed this recently is dropped."
    )
    max_entries: int = Field(
        10_000,
        ge=1,
        description="Most (key, value) pairs remembered; the oldest are forgotten beyond it.",
    )


class Dedup:
    """Drop repeats of a (key, value) pair within the window after it passed."""

    def __init__(self, config: Config) -> None:
        self._key = key_function(config.by)
        self._within = config.within
        self._max_entries = config.max_entries
        self._passed_at: dict[_Entry, float] = {}
        # (pass time, entry) in pass order; an item whose time no longer matches
        # _passed_at is stale (the entry passed again after the clock stepped back).
        self._order: deque[tuple[float, _Entry]] = deque()
        self.dropped = 0
        self.evicted = 0

    @property
    def entries(self) -> int:
        """(key, value) pairs currently remembered."""
        return len(self._passed_at)

    def apply(self, event: Event) -> tuple[Event, ...]:
        now = event.time
        self._forget_until(now)
        entry = (self._key(event), value_identity(event.value))
        passed_at = self._passed_at.get(entry)
        if passed_at is not None and passed_at <= now < passed_at + self._within:
            self.dropped += 1
            return ()
        self._passed_at[entry] = now
        self._order.append((now, entry))
        while len(self._order) > self._max_entries:
            if self._forget_oldest():
                self.evicted += 1
        return (event,)

    def tick(self, now: float) -> tuple[Event, ...]:
        self._forget_until(now)
        return ()

    def flush(self) -> tuple[Event, ...]:
        return ()

    def _forget_until(self, now: float) -> None:
        while self._order and self._order[0][0] + self._within <= now:
            self._forget_oldest()

    def _forget_oldest(self) -> bool:
        passed_at, entry = self._order.popleft()
        if self._passed_at.get(entry) == passed_at:
            del self._passed_at[entry]
            return True
        return False


def build(config: Config) -> Dedup:
    return Dedup(config)
