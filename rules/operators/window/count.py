"""Count windows: every ``count`` numeric values of a key make one window.

The window closes on its last value, in arrival order, and spans the earliest
to the latest window time of its values; its output carries the latest. Time
never closes a count window (``tick`` does nothing but keep the clock); on
``flush``, a window not yet full is emitted tagged ``partial: "true"``.

```yaml
window: {kind: count, count: 100, aggregate: [avg, p99]}
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from tidegate.event import Event
from tidegate.rules.keys import StreamKey
from tidegate.rules.operator import NO_EVENTS
from tidegate.rules.operators.window.config import CountSection
from tidegate.rules.operators.window.operator import WindowOperator
from tidegate.rules.operators.window.samples import Samples


@dataclass(slots=True)
class _KeyCount:
    latest: Event
    samples: Samples = field(default_factory=Samples)


class CountWindows(WindowOperator, sections=(CountSection,)):
    _time_closes_windows = False

    def __init__(self, config: CountSection) -> None:
        super().__init__(config)
        self._count = config.count
        self._keys: dict[StreamKey, _KeyCount] = {}

    @property
    def open_windows(self) -> int:
        return len(self._keys)

    def _add(self, key: StreamKey, event: Event, t: float, value: float) -> Sequence[Event]:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyCount(event)
        state.samples.add(t, event.time, value)
        state.latest = event
        if len(state.samples) < self._count:
            return NO_EVENTS
        del self._keys[key]
        window = self._emit(state, partial=False)
        return NO_EVENTS if window is None else (window,)

    def _emit(self, state: _KeyCount, *, partial: bool) -> Event | None:
        times, values, stamps = state.samples.take_all()
        return self._window_event(
            state.latest, values, stamps, times[0], times[-1], partial=partial
        )

    def _close_due(self) -> Sequence[Event]:
        self._next_due = math.inf
        return NO_EVENTS

    def _close_all(self) -> Sequence[Event]:
        emitted = [self._emit(state, partial=True) for state in self._keys.values()]
        self._keys.clear()
        return [window for window in emitted if window is not None]
