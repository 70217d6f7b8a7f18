"""Dedup: drop an event whose key and value equal one passed within the window.

Each event that passes opens a window of ``within`` seconds from its own time.
A later-arriving event with the same key (``by``, default ``[source, name]``)
and the same value (as ``on_change`` defines it: ``1`` and ``1.0`` are the
same, ``true`` and ``1`` are not) is a duplicate when its time falls in one of
those windows: ``passed <= time < passed + within``. Only passed events open a
window, so a value repeated every second with ``within: 60s`` passes once a
minute. Dropped events are counted in ``dropped``.

**Late and out-of-order events** follow the same definition. The operator's
clock is the newest time it has seen (event times and its rule's ticks: the
gateway clock for ``time: processing``, the largest event time for ``time:
event``, the replayed events' time in ``tidegate rules test``). An event up to
``allowed_lateness`` behind that clock (default: as long as ``within``) is
compared with every earlier pass of its value: each pass is remembered until
the clock is past ``passed + within + allowed_lateness``, so unrelated events
moving the clock never change the answer. An event older than a pass (out of
order) is compared with the other passes; if none covers it, it passes and
opens a window of its own, so a value may have several windows open. An event
more than ``allowed_lateness`` behind the clock (or with a time that is not a
number) is not compared: it passes and is counted in ``too_late``, as its
passes may have been forgotten — raise ``allowed_lateness`` if that counter
grows.

**Clock steps.** A tick more than ``CLOCK_STEP_BACK`` (1 s) before the
previous tick (the gateway clock was set back) forgets every pass and moves the
clock back to it, counted in ``clock_jumps``; otherwise every event would be
too late until the clock caught up.

Memory is bounded: at most ``max_entries`` passes are remembered (``entries``
is how many are now); beyond, the oldest passes are forgotten early and counted
in ``evicted`` (a repeat of such a value may then pass again inside its
window).

```yaml
rules:
  - name: no-repeats
    match: {source: rfid-reader}
    dedup: {within: 60s}
  - name: no-repeated-codes
    dedup: {within: 5m, by: [name], max_entries: 1000, allowed_lateness: 10m}
```
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Hashable

from pydantic import Field

from tidegate.event import Event
from tidegate.rules.clock import CLOCK_STEP_BACK
from tidegate.rules.keys import KeyedBy, StreamKey, key_function
from tidegate.rules.on_change import value_identity
from tidegate.schema_types import Duration

KEY = "dedup"

_Entry = tuple[StreamKey, Hashable]


class Config(KeyedBy):
    within: Duration = Field(
        gt=0, description="Window, e.g. `60s`: a repeat of a value passed this recently is dropped."
    )
    allowed_lateness: Duration | None = Field(
        None,
        ge=0,
        description="How far behind the newest time seen an event may be and still be compared "
        "(later ones pass, counted in `too_late`); default: as long as `within`.",
    )
    max_entries: int = Field(
        10_000,
        ge=1,
        description="Most passes (key, value and time) remembered; the oldest are forgotten "
        "beyond it (counted in `evicted`).",
    )


class Dedup:
    """Drop repeats of a (key, value) pair inside the window of an earlier pass."""

    def __init__(self, config: Config) -> None:
        self._key = key_function(config.by)
        self._within = config.within
        self._lateness = (
            config.within if config.allowed_lateness is None else config.allowed_lateness
        )
        self._kept_for = self._within + self._lateness
        self._max_entries = config.max_entries
        self._passes: dict[_Entry, list[float]] = {}
        """Pass times per (key, value); usually one or two."""
        # Every remembered pass, oldest first, for the clock to forget and the bound to
        # evict: passes in time order (the usual case) queue up at O(1); an out-of-order
        # one goes to a heap. The counter breaks ties without comparing entries (values
        # of mixed types).
        self._in_order: deque[tuple[float, _Entry]] = deque()
        self._out_of_order: list[tuple[float, int, _Entry]] = []
        self._counter = itertools.count()
        self._clock = -math.inf
        self._last_tick = -math.inf
        self.dropped = 0
        self.too_late = 0
        self.evicted = 0
        self.clock_jumps = 0

    @property
    def entries(self) -> int:
        """Passes remembered now."""
        return len(self._in_order) + len(self._out_of_order)

    def apply(self, event: Event) -> tuple[Event, ...]:
        t = event.time
        if t > self._clock:
            self._advance(t)
        entry = (self._key(event), value_identity(event.value))
        passes = self._passes.get(entry)
        if t >= self._clock - self._lateness and t != math.inf:  # NaN and inf fail here
            if passes is not None:
                within = self._within
                for passed in passes:
                    if passed <= t < passed + within:
                        self.dropped += 1
                        return ()
            self._remember(entry, passes, t)
            return (event,)
        self.too_late += 1  # its passes may be forgotten: it cannot be compared
        if t + self._kept_for >= self._clock and math.isfinite(t):  # still needed by others
            self._remember(entry, passes, t)
        return (event,)

    def tick(self, now: float) -> tuple[Event, ...]:
        # A step is judged against the previous tick: event times may run ahead of the
        # gateway clock (a device's own stamps), and that is no step of the clock.
        if now < self._last_tick - CLOCK_STEP_BACK:
            self.clock_jumps += 1
            self._passes.clear()
            self._in_order.clear()
            self._out_of_order.clear()
            self._clock = now
        elif now > self._clock:
            self._advance(now)
        self._last_tick = now
        return ()

    def flush(self) -> tuple[Event, ...]:
        return ()

    def _advance(self, now: float) -> None:
        """Move the clock to ``now``; forget the passes no event in bounds can fall behind."""
        self._clock = now
        horizon = now - self._kept_for
        in_order = self._in_order
        if self._out_of_order:
            while self._oldest() < horizon:
                self._forget_oldest()
        else:  # the usual case, without the heap
            while in_order and in_order[0][0] < horizon:
                self._forget_oldest()

    def _remember(self, entry: _Entry, passes: list[float] | None, t: float) -> None:
        if passes is None:
            self._passes[entry] = [t]
        else:
            passes.append(t)
        in_order = self._in_order
        if not in_order or t >= in_order[-1][0]:
            in_order.append((t, entry))
        else:
            heapq.heappush(self._out_of_order, (t, next(self._counter), entry))
        excess = len(in_order) + len(self._out_of_order) - self._max_entries
        for _ in range(excess):
            self._forget_oldest()
        if excess > 0:
            self.evicted += excess

    def _oldest(self) -> float:
        """The time of the oldest pass remembered (inf: none)."""
        in_order, heap = self._in_order, self._out_of_order
        if heap:
            return min(heap[0][0], in_order[0][0]) if in_order else heap[0][0]
        return in_order[0][0] if in_order else math.inf

    def _forget_oldest(self) -> None:
        in_order, heap = self._in_order, self._out_of_order
        if heap and (not in_order or heap[0][0] < in_order[0][0]):
            passed, _, entry = heapq.heappop(heap)
        else:
            passed, entry = in_order.popleft()
        passes = self._passes[entry]
        passes.remove(passed)
        if not passes:
            del self._passes[entry]


def build(config: Config) -> Dedup:
    return Dedup(config)
