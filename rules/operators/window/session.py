"""Session windows: bursts of activity separated by at least ``gap`` of silence.

A value joins a session when it is less than ``gap`` from one of the session's
values; a value that is within ``gap`` of two sessions (event time, out of
order) merges them. A session closes when ``last value + gap (+
allowed_lateness)`` is reached by the clock or the watermark; its output spans
``[first value, last value]`` and carries the last value's time.

```yaml
window: {kind: session, gap: 30s, by: [source], aggregate: [count, first, last]}
```

A stream that never pauses for ``gap`` never closes its session: it holds up
to ``max_values_per_key`` values, then further ones are dropped and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from tidegate.event import Event
from tidegate.rules.keys import StreamKey
from tidegate.rules.operator import NO_EVENTS
from tidegate.rules.operators.window.config import SessionSection
from tidegate.rules.operators.window.operator import WindowOperator
from tidegate.rules.operators.window.samples import Samples


@dataclass(slots=True)
class _Session:
    first: float
    last: float


@dataclass(slots=True)
class _KeySessions:
    latest: Event
    sessions: list[_Session] = field(default_factory=list)
    """Open sessions, in time order; at least ``gap`` apart."""
    samples: Samples = field(default_factory=Samples)


class SessionWindows(WindowOperator, sections=(SessionSection,)):
    def __init__(self, config: SessionSection) -> None:
        super().__init__(config)
        self._gap = config.gap
        self._keys: dict[StreamKey, _KeySessions] = {}

    @property
    def open_windows(self) -> int:
        return sum(len(state.sessions) for state in self._keys.values())

    def _due(self, session: _Session) -> float:
        return session.last + self._gap + self._lateness

    def _add(self, key: StreamKey, event: Event, t: float, value: float) -> Sequence[Event]:
        state = self._keys.get(key)
        sessions = state.sessions if state is not None else []
        gap = self._gap
        touched = [i for i, s in enumerate(sessions) if s.first - gap < t < s.last + gap]
        if not touched and self._event_time and t + gap + self._lateness <= self._watermark:
            self.late_events += 1  # a session of this value alone would already be closed
            return NO_EVENTS
        if state is None:
            state = self._keys[key] = _KeySessions(event)
            sessions = state.sessions
        if not self._has_room(len(state.samples)):
            return NO_EVENTS
        if touched:
            merged = _Session(
                min(t, sessions[touched[0]].first), max(t, sessions[touched[-1]].last)
            )
            sessions[touched[0] : touched[-1] + 1] = [merged]
        else:
            merged = _Session(t, t)
            at = sum(1 for s in sessions if s.first < t)
            sessions.insert(at, merged)
        state.samples.add(t, event.time, value)
        state.latest = event
        self._next_due = min(self._next_due, self._due(merged))
        return NO_EVENTS

    def _close_due(self) -> Sequence[Event]:
        emitted: list[Event] = []
        next_due = math.inf
        for key, state in list(self._keys.items()):
            sessions = state.sessions
            while sessions and self._due(sessions[0]) <= self._watermark:
                self._emit(state, sessions.pop(0), emitted, partial=False)
            if sessions:
                next_due = min(next_due, self._due(sessions[0]))
            else:
                del self._keys[key]
        self._next_due = next_due
        return emitted

    def _emit(
        self, state: _KeySessions, session: _Session, out: list[Event], *, partial: bool
    ) -> None:
        values, stamps = state.samples.span_closed(session.first, session.last)
        state.samples.drop_through(session.last)
        window = self._window_event(
            state.latest, values, stamps, session.first, session.last, partial=partial
        )
        if window is not None:
            out.append(window)

    def _close_all(self) -> Sequence[Event]:
        emitted: list[Event] = []
        for state in self._keys.values():
            for session in state.sessions:
                self._emit(state, session, emitted, partial=True)
        self._keys.clear()
        self._next_due = math.inf
        return emitted
