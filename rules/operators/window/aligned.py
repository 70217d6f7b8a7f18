"""Tumbling and hopping windows: fixed windows aligned to the Unix epoch.

Window ``k`` is ``[k·hop, k·hop + size)``; tumbling is the case ``hop = size``.
One engine serves both, so they live in one module.

Per key, the values of every open window share one time-sorted buffer, and
``next_k`` is the first window of the key not emitted yet. Closing window
``k`` reads the slice ``[start, end)`` of the buffer and then forgets the
values before window ``k + 1``: each value is stored once however many windows
it counts in. Window indices are integers and boundaries are computed as
``k * hop (+ size)`` everywhere, so a value exactly on a boundary is always
assigned the same way.

```yaml
window: {kind: hopping, size: 60s, hop: 10s, aggregate: [avg, max]}
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from tidegate.event import Event
from tidegate.rules.keys import StreamKey
from tidegate.rules.operator import NO_EVENTS
from tidegate.rules.operators.window.config import HoppingSection, TumblingSection
from tidegate.rules.operators.window.operator import WindowOperator
from tidegate.rules.operators.window.samples import Samples

MAX_EMPTY_RUN = 1000
"""emit_empty: the most empty windows in a row one key emits at once."""


@dataclass(slots=True)
class _KeyWindows:
    next_k: int
    """The key's first window not emitted yet."""
    latest: Event
    samples: Samples = field(default_factory=Samples)


class AlignedWindows(WindowOperator, sections=(TumblingSection, HoppingSection)):
    def __init__(self, config: TumblingSection | HoppingSection) -> None:
        super().__init__(config)
        self._size = config.size
        self._hop = config.hop if isinstance(config, HoppingSection) else config.size
        self._emit_empty = config.emit_empty
        self._keys: dict[StreamKey, _KeyWindows] = {}

    # Window arithmetic. floor() gives the index up to one off on boundaries
    # because of rounding; the loops settle it against the boundary formulas.

    def _start(self, k: int) -> float:
        return k * self._hop

    def _end(self, k: int) -> float:
        return k * self._hop + self._size

    def _last_k(self, t: float) -> int:
        """The last window holding time t: the largest k with start(k) <= t."""
        k = math.floor(t / self._hop)
        while self._start(k + 1) <= t:
            k += 1
        while self._start(k) > t:
            k -= 1
        return k

    def _first_k(self, t: float) -> int:
        """The first window holding time t: the smallest k with end(k) > t."""
        k = math.floor((t - self._size) / self._hop) + 1
        while self._end(k - 1) > t:
            k -= 1
        while self._end(k) <= t:
            k += 1
        return k

    def _last_closed_k(self) -> int:
        """The last window the watermark has closed: the largest k with end(k) + lateness <= W."""
        return self._first_k(self._watermark - self._lateness) - 1

    def _first_open_k(self, t: float) -> int:
        """The first window holding time t that the watermark has not closed."""
        first_k = self._first_k(t)
        if self._watermark == -math.inf:
            return first_k
        return max(first_k, self._last_closed_k() + 1)

    def _due(self, k: int) -> float:
        return self._end(k) + self._lateness

    @property
    def open_windows(self) -> int:
        total = 0
        for state in self._keys.values():
            if state.samples:
                first = max(state.next_k, self._first_k(state.samples.earliest()))
                total += self._last_k(state.samples.latest()) - first + 1
        return total

    def _add(self, key: StreamKey, event: Event, t: float, value: float) -> Sequence[Event]:
        if self._event_time and self._due(self._last_k(t)) <= self._watermark:
            self.late_events += 1  # every window holding t has closed
            return NO_EVENTS
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyWindows(self._first_open_k(t), event)
            self._next_due = min(self._next_due, self._due(state.next_k))
        elif t < self._end(state.next_k - 1):
            # Event time, out of order: t also falls in windows before the key's first
            # one; those still open were never emitted for this key, so reopen them.
            state.next_k = min(state.next_k, self._first_open_k(t))
            self._next_due = min(self._next_due, self._due(state.next_k))
        if not self._has_room(len(state.samples)):
            return NO_EVENTS
        state.samples.add(t, event.time, value)
        state.latest = event
        return NO_EVENTS

    def _close_due(self) -> Sequence[Event]:
        emitted: list[Event] = []
        last_closed = self._last_closed_k()
        next_due = math.inf
        for key, state in list(self._keys.items()):
            self._close_key(state, last_closed, emitted)
            if not state.samples and not self._emit_empty:
                del self._keys[key]
            else:
                next_due = min(next_due, self._due(state.next_k))
        self._next_due = next_due
        return emitted

    def _close_key(self, state: _KeyWindows, last_closed: int, emitted: list[Event]) -> None:
        while state.next_k <= last_closed:
            samples = state.samples
            first_filled = self._first_k(samples.earliest()) if samples else last_closed + 1
            if state.next_k < first_filled:
                # A run of windows without values up to the next one with values.
                run_end = min(first_filled, last_closed + 1)
                if self._emit_empty:
                    self._emit_empty_run(state, run_end, emitted)
                state.next_k = run_end
                continue
            k = state.next_k
            values, stamps = samples.span(self._start(k), self._end(k))
            window = self._window_event(state.latest, values, stamps, self._start(k), self._end(k))
            if window is not None:
                emitted.append(window)
            state.next_k = k + 1
            samples.drop_before(self._start(k + 1))

    def _emit_empty_run(self, state: _KeyWindows, run_end: int, emitted: list[Event]) -> None:
        skipped = run_end - state.next_k - MAX_EMPTY_RUN
        if skipped > 0:  # the clock jumped: emit only the latest windows
            self.skipped_empty_windows += skipped
        for k in range(max(state.next_k, run_end - MAX_EMPTY_RUN), run_end):
            window = self._window_event(state.latest, (), (), self._start(k), self._end(k))
            if window is not None:
                emitted.append(window)

    def _close_all(self) -> Sequence[Event]:
        emitted: list[Event] = []
        for state in self._keys.values():
            samples = state.samples
            while samples:
                k = max(state.next_k, self._first_k(samples.earliest()))
                start, end = self._start(k), self._end(k)
                values, stamps = samples.span(start, end)
                # Every window the watermark had closed is emitted already.
                window = self._window_event(
                    state.latest,
                    values,
                    stamps,
                    start,
                    end,
                    time=min(end, max(self._watermark, samples.latest())),  # cut now
                    partial=True,
                )
                if window is not None:
                    emitted.append(window)
                state.next_k = k + 1
                samples.drop_before(self._start(k + 1))
        self._keys.clear()
        self._next_due = math.inf
        return emitted
