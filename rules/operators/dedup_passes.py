"""The passes ``dedup`` remembers, and the clock that says how long.

``tidegate.rules.operators.dedup`` documents what the operator does; this module holds
its memory. A *pass* is the time of an event that passed, remembered per
(key, value). Two stores, one per kind of rule clock:

- ``ClockPasses`` (``time: processing``): one clock for every key, the ``now``
  of the latest tick (the gateway clock). Event times never move it: a device
  stamping a day ahead must not make every other event too late.
- ``StreamPasses`` (``time: event``): each key (stream) has its own clock, the
  newest time of its own events, so one device's stamps, however wrong, never
  make another stream's events too late.

Either way an event is *compared* when it is at most ``lateness`` behind its
clock, and a pass is kept while such an event may still fall in its window:
until the clock is past ``passed + within + lateness``.

Cost: the passes of one (key, value) are kept sorted, so whether one covers an
event is one binary search (the latest pass at or before the event covers it if
any does). Passes are forgotten and evicted oldest first, which is always the
front of their (key, value)'s list, so removal is O(1) amortised; a pass later
than the others is appended at O(1), one earlier than all of them takes a
forgotten slot at the front when there is one, and any other is inserted at its
place (a memory move, no comparisons beyond the search).
"""

from __future__ import annotations

import heapq
import itertools
import math
from bisect import bisect_right, insort
from collections import OrderedDict, deque
from collections.abc import Hashable
from enum import Enum
from typing import Generic, TypeVar

from tidegate.rules.clock import CLOCK_STEP_BACK
from tidegate.rules.keys import StreamKey

Item = TypeVar("Item")

_COMPACT_AFTER = 32
"""Dead slots at the front of a pass list before it is compacted (amortises removal)."""


class Verdict(Enum):
    PASSED = "passed"
    DROPPED = "dropped"
    TOO_LATE = "too_late"


class PassTimes:
    """The pass times of one (key, value), oldest first; removed from the oldest end only."""

    __slots__ = ("_start", "_times")

    def __init__(self, first: float) -> None:
        self._times = [first]
        self._start = 0
        """Slots before it are forgotten: removing from the front moves no memory."""

    def __len__(self) -> int:
        return len(self._times) - self._start

    def covers(self, t: float, within: float) -> bool:
        """Whether a pass's window holds ``t``: ``passed <= t < passed + within``."""
        times = self._times
        i = bisect_right(times, t, self._start) - 1
        # The latest pass at or before t has the window that reaches furthest.
        return i >= self._start and t < times[i] + within

    def add(self, t: float) -> None:
        times = self._times
        start = self._start
        if t >= times[-1]:
            times.append(t)
        elif start and t <= times[start]:  # before every live pass: a forgotten slot takes it
            self._start = start - 1
            times[start - 1] = t
        else:
            insort(times, t, start)

    def drop_oldest(self) -> float:
        times = self._times
        oldest = times[self._start]
        self._start += 1
        if self._start >= _COMPACT_AFTER and 2 * self._start >= len(times):
            del times[: self._start]
            self._start = 0
        return oldest


class TimeOrder(Generic[Item]):
    """Items by time, oldest first: in-order ones queue at O(1), the others go to a heap."""

    __slots__ = ("_heap", "_queue")

    _ties = itertools.count()
    """Breaks heap ties without comparing items (values of mixed types)."""

    def __init__(self) -> None:
        self._queue: deque[tuple[float, Item]] = deque()
        self._heap: list[tuple[float, int, Item]] = []

    def __len__(self) -> int:
        return len(self._queue) + len(self._heap)

    def push(self, t: float, item: Item) -> None:
        queue = self._queue
        if not queue or t >= queue[-1][0]:
            queue.append((t, item))
        else:
            heapq.heappush(self._heap, (t, next(self._ties), item))

    def oldest(self) -> float:
        """The oldest time (inf: empty)."""
        queue, heap = self._queue, self._heap
        if heap:
            return min(heap[0][0], queue[0][0]) if queue else heap[0][0]
        return queue[0][0] if queue else math.inf

    def pop_oldest(self) -> Item:
        queue, heap = self._queue, self._heap
        if heap and (not queue or heap[0][0] < queue[0][0]):
            return heapq.heappop(heap)[2]
        return queue.popleft()[1]

    def clear(self) -> None:
        self._queue.clear()
        self._heap.clear()


_Entry = tuple[StreamKey, Hashable]


class ClockPasses:
    """``time: processing``: one clock for every key, moved by ticks only."""

    def __init__(self, within: float, lateness: float, max_entries: int) -> None:
        self._within = within
        self._lateness = lateness
        self._kept_for = within + lateness
        self._max_entries = max_entries
        self._passes: dict[_Entry, PassTimes] = {}
        self._order: TimeOrder[_Entry] = TimeOrder()
        self.clock = -math.inf
        """The newest tick: before the first one, no event is too late."""

    @property
    def entries(self) -> int:
        return len(self._order)

    def offer(self, key: StreamKey, value: Hashable, t: float) -> tuple[Verdict, int]:
        """Judge one event at (finite) time ``t``; the verdict and how many passes it evicted."""
        entry = (key, value)
        passes = self._passes.get(entry)
        if t >= self.clock - self._lateness:
            if passes is not None and passes.covers(t, self._within):
                return Verdict.DROPPED, 0
            return Verdict.PASSED, self._remember(entry, passes, t)
        # Its passes may be forgotten, so it cannot be compared; its own window may
        # still cover events that can be.
        if t + self._kept_for >= self.clock:
            return Verdict.TOO_LATE, self._remember(entry, passes, t)
        return Verdict.TOO_LATE, 0

    def tick(self, now: float) -> bool:
        """Move the clock to ``now``; whether that was a step back (everything forgotten)."""
        if now < self.clock - CLOCK_STEP_BACK:
            self._passes.clear()
            self._order.clear()
            self.clock = now
            return True
        if now > self.clock:
            self.clock = now
            horizon = now - self._kept_for
            order = self._order
            while order.oldest() < horizon:
                self._forget_oldest()
        return False

    def _remember(self, entry: _Entry, passes: PassTimes | None, t: float) -> int:
        if passes is None:
            self._passes[entry] = PassTimes(t)
        else:
            passes.add(t)
        self._order.push(t, entry)
        excess = len(self._order) - self._max_entries
        for _ in range(excess):
            self._forget_oldest()
        return max(excess, 0)

    def _forget_oldest(self) -> None:
        entry = self._order.pop_oldest()
        passes = self._passes[entry]
        passes.drop_oldest()  # the oldest of all is its entry's oldest
        if not passes:
            del self._passes[entry]


class _Stream:
    """One key's clock and passes (``StreamPasses``)."""

    __slots__ = ("clock", "order", "values")

    def __init__(self, clock: float) -> None:
        self.clock = clock
        self.values: dict[Hashable, PassTimes] = {}
        self.order: TimeOrder[Hashable] = TimeOrder()

    def forget_oldest(self) -> None:
        value = self.order.pop_oldest()
        passes = self.values[value]
        passes.drop_oldest()  # the stream's oldest is its value's oldest
        if not passes:
            del self.values[value]


class StreamPasses:
    """``time: event``: each key's clock is the newest time of its own events."""

    def __init__(self, within: float, lateness: float, max_entries: int) -> None:
        self._within = within
        self._lateness = lateness
        self._kept_for = within + lateness
        self._max_entries = max_entries
        # Least recently arrived first: the bound evicts from the stream silent longest
        # (a stream that stopped keeps its passes, as its clock stopped with it).
        self._streams: OrderedDict[StreamKey, _Stream] = OrderedDict()
        self._entries = 0

    @property
    def entries(self) -> int:
        return self._entries

    def offer(self, key: StreamKey, value: Hashable, t: float) -> tuple[Verdict, int]:
        """Judge one event at (finite) time ``t``; the verdict and how many passes it evicted."""
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(t)
        else:
            self._streams.move_to_end(key)
            if t > stream.clock:
                stream.clock = t
                horizon = t - self._kept_for
                order = stream.order
                while order.oldest() < horizon:
                    stream.forget_oldest()
                    self._entries -= 1
        passes = stream.values.get(value)
        if t >= stream.clock - self._lateness:
            if passes is not None and passes.covers(t, self._within):
                return Verdict.DROPPED, 0
            return Verdict.PASSED, self._remember(stream, value, passes, t)
        if t + self._kept_for >= stream.clock:
            return Verdict.TOO_LATE, self._remember(stream, value, passes, t)
        return Verdict.TOO_LATE, 0

    def _remember(
        self, stream: _Stream, value: Hashable, passes: PassTimes | None, t: float
    ) -> int:
        if passes is None:
            stream.values[value] = PassTimes(t)
        else:
            passes.add(t)
        stream.order.push(t, value)
        self._entries += 1
        evicted = 0
        while self._entries > self._max_entries:
            key, silent = next(iter(self._streams.items()))
            silent.forget_oldest()
            self._entries -= 1
            evicted += 1
            if not silent.order:  # nothing left to compare with: the stream starts afresh
                del self._streams[key]
        return evicted
