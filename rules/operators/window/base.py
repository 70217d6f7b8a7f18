"""What every window kind shares: numeric values, the time domain, counters, output events.

A kind (``window_aligned``, ``window_sliding``, ``window_session``,
``window_count``) implements ``_add`` (take one value), ``_close_due`` (emit
what the watermark has closed), ``_close_all`` (emit everything now) and
``open_windows``. This class turns ``apply``/``tick``/``flush`` into those
calls. The user-facing semantics are documented in ``tidegate.rules.operators.window.operator``.

To keep ``tick`` cheap when the rule stage calls it for every event, a kind
keeps ``_next_due``, a lower bound of the earliest time at which anything
closes; nothing is scanned before the watermark reaches it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tidegate.event import Event, Scalar, Value, new_event
from tidegate.rules.clock import CLOCK_STEP_BACK
from tidegate.rules.keys import StreamKey, key_function
from tidegate.rules.operators.window.aggregate import compute, parse_aggregate
from tidegate.timefmt import rfc3339

if TYPE_CHECKING:
    from tidegate.rules.operators.window.operator import Config

__all__ = ["CLOCK_STEP_BACK", "MAX_EMPTY_RUN", "NO_EVENTS", "WindowOperator", "numeric_value"]

MAX_EMPTY_RUN = 1000
"""emit_empty: the most empty windows in a row one key emits at once."""

NO_EVENTS: Sequence[Event] = ()


def numeric_value(value: Value) -> float | None:
    """The value as a finite float, or None when it is not a number (bools are 0/1)."""
    if type(value) is float:  # the common case first
        return value if math.isfinite(value) else None
    if isinstance(value, int):  # includes bool
        try:
            return float(value)
        except OverflowError:  # an int too large for a float
            return None
    if isinstance(value, float):  # a float subclass
        return float(value) if math.isfinite(value) else None
    return None


class WindowOperator(ABC):
    """The window operator (a ``TimedOperator``): ``apply``, ``tick``, ``flush``, counters."""

    _time_closes_windows = True
    """False for count windows: a clock step back leaves them alone."""

    def __init__(self, config: Config) -> None:
        self._key = key_function(config.by)
        self._aggregates = tuple(parse_aggregate(name) for name in config.aggregate)
        self._event_time = config.time == "event"
        self._lateness = config.allowed_lateness if self._event_time else 0.0
        self._max_values = config.max_values_per_key
        # Event time: the watermark. Processing time: the clock as of the latest tick.
        self._watermark = -math.inf
        self._next_due = math.inf
        self.late_events = 0
        self.skipped_non_numeric = 0
        self.overflow_events = 0
        self.undefined_windows = 0
        self.skipped_empty_windows = 0
        self.clock_jumps = 0

    @property
    def watermark(self) -> float:
        """Event time: the watermark; processing time: the clock (-inf before any)."""
        return self._watermark

    @property
    @abstractmethod
    def open_windows(self) -> int:
        """Windows holding values now, over all keys."""

    def counters(self) -> dict[str, int]:
        """The counters for ``tidegate status``."""
        return {
            "late_events": self.late_events,
            "skipped_non_numeric": self.skipped_non_numeric,
            "overflow_events": self.overflow_events,
            "undefined_windows": self.undefined_windows,
            "skipped_empty_windows": self.skipped_empty_windows,
            "clock_jumps": self.clock_jumps,
            "open_windows": self.open_windows,
        }

    def apply(self, event: Event) -> Sequence[Event]:
        value = numeric_value(event.value)
        if value is None or not math.isfinite(event.time):
            self.skipped_non_numeric += 1
            return NO_EVENTS
        key = self._key(event)
        if not self._event_time:
            clock = self._watermark
            return self._add(key, event, clock if clock != -math.inf else event.time, value)
        t = event.time
        emitted = self._add(key, event, t, value)
        if t > self._watermark:
            self._watermark = t
            if t >= self._next_due:
                closed = self._close_due()
                return [*emitted, *closed] if emitted else closed
        return emitted

    def tick(self, now: float) -> Sequence[Event]:
        if now > self._watermark:
            self._watermark = now
            return self._close_due() if now >= self._next_due else NO_EVENTS
        if not self._event_time and now < self._watermark - CLOCK_STEP_BACK:
            # The clock was set back: waiting for it to catch up could hold windows open
            # for hours, so emit them as they are and start again from the new time.
            self.clock_jumps += 1
            emitted = self._close_all() if self._time_closes_windows else NO_EVENTS
            self._watermark = now
            return emitted
        return NO_EVENTS

    def flush(self) -> Sequence[Event]:
        return self._close_all()

    def _is_late(self, t: float) -> bool:
        return self._event_time and t < self._watermark - self._lateness

    def _has_room(self, held: int) -> bool:
        if held < self._max_values:
            return True
        self.overflow_events += 1
        return False

    @abstractmethod
    def _add(self, key: StreamKey, event: Event, t: float, value: float) -> Sequence[Event]:
        """Take one numeric value at window time ``t``; return what it makes the kind emit."""

    @abstractmethod
    def _close_due(self) -> Sequence[Event]:
        """Emit what the watermark has closed; recompute ``_next_due``."""

    @abstractmethod
    def _close_all(self) -> Sequence[Event]:
        """Emit every window holding values now (partial when before its end); forget them."""

    def _window_event(
        self,
        latest: Event,
        values: Sequence[float],
        stamps: Sequence[float],
        start: float,
        end: float,
        *,
        time: float | None = None,
        partial: bool = False,
    ) -> Event | None:
        """The output event of one window, or None when its only aggregate is undefined."""
        results = compute(self._aggregates, values, stamps)
        value: Value
        if len(self._aggregates) == 1:
            if not results:
                self.undefined_windows += 1
                return None
            (value,) = results.values()
        else:
            mapping: dict[str, Scalar] = dict(results)
            value = mapping
        tags = dict(latest.tags) if latest.tags else {}
        tags["window_start"] = rfc3339(start)
        tags["window_end"] = rfc3339(end)
        if partial:
            tags["partial"] = "true"
        return new_event(
            latest.source,
            latest.name,
            value,
            unit=latest.unit,
            tags=tags,
            time=end if time is None else time,
        )
