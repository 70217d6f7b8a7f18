"""Sliding windows: on every event, the aggregates of the last ``size`` seconds.

For an event at window time ``t`` the window is ``(t - size, t]``: the event's
own value and the key's values received before it whose time lies within
``size`` before it. The output is emitted by ``apply`` right away, with
``time = t``; ``tick`` only forgets values too old to be in any future window,
and ``flush`` emits nothing.

```yaml
window: {kind: sliding, size: 5m, aggregate: [avg, max]}
```

Each output aggregates the whole window again: O(values in the window) per
event. That is cheap for the usual few hundred values; ``bench/rule_windows.py``
measures it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from tidegate.event import Event
from tidegate.rules.keys import StreamKey
from tidegate.rules.operator import NO_EVENTS
from tidegate.rules.operators.window.config import SlidingSection
from tidegate.rules.operators.window.operator import WindowOperator
from tidegate.rules.operators.window.samples import Samples


@dataclass(slots=True)
class _KeyValues:
    latest: Event
    samples: Samples = field(default_factory=Samples)


class SlidingWindow(WindowOperator, sections=(SlidingSection,)):
    def __init__(self, config: SlidingSection) -> None:
        super().__init__(config)
        self._size = config.size
        self._keys: dict[StreamKey, _KeyValues] = {}

    @property
    def open_windows(self) -> int:
        return sum(1 for state in self._keys.values() if state.samples)

    def _horizon(self, now: float) -> float:
        """Values at or before this time are in no window that can still be emitted."""
        # The earliest window still to come ends at now - lateness (an event stamped
        # before that is late) and starts size earlier.
        return now - self._lateness - self._size

    def _add(self, key: StreamKey, event: Event, t: float, value: float) -> Sequence[Event]:
        if self._is_late(t):
            self.late_events += 1
            return NO_EVENTS
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyValues(event)
        samples = state.samples
        samples.drop_through(self._horizon(max(t, self._watermark)))
        if not self._has_room(len(samples)):
            return NO_EVENTS
        samples.add(t, event.time, value)
        state.latest = event
        self._next_due = min(self._next_due, samples.earliest() + self._size + self._lateness)
        values, stamps = samples.span_after(t - self._size, t)
        window = self._window_event(event, values, stamps, t - self._size, t)
        return NO_EVENTS if window is None else (window,)

    def _close_due(self) -> Sequence[Event]:
        # Nothing closes; forget what has aged out, and the keys left without values.
        horizon = self._horizon(self._watermark)
        next_due = math.inf
        for key, state in list(self._keys.items()):
            state.samples.drop_through(horizon)
            if state.samples:
                next_due = min(next_due, state.samples.earliest() + self._size + self._lateness)
            else:
                del self._keys[key]
        self._next_due = next_due
        return NO_EVENTS

    def _close_all(self) -> Sequence[Event]:
        self._keys.clear()
        self._next_due = math.inf
        return NO_EVENTS
