"""The values one key's open windows hold, in window-time order.

Each sample keeps three numbers: its window time (the event's time, or the
gateway clock when it arrived with ``time: processing``), its event timestamp
(what ``first``/``last``/``rate``/``integral`` order by) and its value.

Python lists, not numpy arrays: measured here, appending a sample to three
lists costs ~100 ns, storing one value into a growable float64 array ~190 ns
(numpy scalar stores are slow), and the aggregates convert a window once, at
close, and only when it is large enough for numpy to pay (see
``tidegate.rules.operators.window.aggregate``).

Samples usually arrive in time order; an out-of-order one (event time) only
marks the buffer unsorted, and the next read sorts it once (stably, so equal
times keep their arrival order). Reads are then binary searches and slices.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right


class Samples:
    __slots__ = ("_in_order", "stamps", "times", "values")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.stamps: list[float] = []
        self.values: list[float] = []
        self._in_order = True

    def __len__(self) -> int:
        return len(self.values)

    def add(self, time: float, stamp: float, value: float) -> None:
        times = self.times
        if times and time < times[-1]:
            self._in_order = False
        times.append(time)
        self.stamps.append(stamp)
        self.values.append(value)

    def _sort(self) -> None:
        if self._in_order:
            return
        times = self.times
        order = sorted(range(len(times)), key=times.__getitem__)
        self.times = [times[i] for i in order]
        self.stamps = [self.stamps[i] for i in order]
        self.values = [self.values[i] for i in order]
        self._in_order = True

    def earliest(self) -> float:
        self._sort()
        return self.times[0]

    def latest(self) -> float:
        self._sort()
        return self.times[-1]

    def _slice(self, i: int, j: int) -> tuple[list[float], list[float]]:
        return self.values[i:j], self.stamps[i:j]

    def span(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """(values, stamps) of the samples with ``start <= time < end``."""
        self._sort()
        return self._slice(bisect_left(self.times, start), bisect_left(self.times, end))

    def span_closed(self, first: float, last: float) -> tuple[list[float], list[float]]:
        """(values, stamps) of the samples with ``first <= time <= last``."""
        self._sort()
        return self._slice(bisect_left(self.times, first), bisect_right(self.times, last))

    def span_after(self, after: float, last: float) -> tuple[list[float], list[float]]:
        """(values, stamps) of the samples with ``after < time <= last``."""
        self._sort()
        return self._slice(bisect_right(self.times, after), bisect_right(self.times, last))

    def _drop_first(self, n: int) -> None:
        if n:
            del self.times[:n]
            del self.stamps[:n]
            del self.values[:n]

    def drop_before(self, time: float) -> None:
        """Forget the samples with ``time < time``."""
        self._sort()
        self._drop_first(bisect_left(self.times, time))

    def drop_through(self, time: float) -> None:
        """Forget the samples with ``time <= time``."""
        self._sort()
        self._drop_first(bisect_right(self.times, time))

    def take_all(self) -> tuple[list[float], list[float], list[float]]:
        """(times, values, stamps) of every sample; the buffer is left empty."""
        self._sort()
        taken = (self.times, self.values, self.stamps)
        self.times, self.stamps, self.values = [], [], []
        return taken
