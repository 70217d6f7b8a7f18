"""Window rules: aggregate each stream over time, or over a number of events.

```yaml
rules:
  - name: greenhouse-minute
    match: {source: "greenhouse*", name: temperature}
    window:
      kind: tumbling          # tumbling | hopping | sliding | session | count
      size: 60s
      by: [source, name]      # one set of windows per key
      time: processing        # or event: the events' own timestamps
      aggregate: [avg, min, max, p90, count]
```

## Kinds

- ``tumbling`` (``size``): back-to-back windows ``[k·size, (k+1)·size)`` aligned
  to the Unix epoch, so a ``1h`` window runs from hh:00 to hh:00 UTC. Every
  value falls in exactly one window.
- ``hopping`` (``size``, ``hop``): windows of length ``size`` starting every
  ``hop``, ``[k·hop, k·hop + size)``. With ``hop < size`` they overlap and each
  value counts in ``size/hop`` windows; ``hop: 10s, size: 60s`` reports the
  last minute every ten seconds.
- ``sliding`` (``size``): on every numeric event at time ``t``, one output with
  the aggregates of the key's values whose time lies in ``(t - size, t]``: the
  event itself and the values that came before it within ``size``. (With
  ``time: event``, values received earlier but stamped after ``t`` are not in
  it.) Sliding windows emit only on events, never on tick or flush.
- ``session`` (``gap``): a run of values less than ``gap`` apart. It closes when
  ``gap`` passes without a value, and spans the first to the last value.
- ``count`` (``count``): every ``count`` values of a key make one window, closed
  by the last of them. Time never closes a count window.

Only numbers are aggregated (``tidegate.rules.operators.window.aggregate``); other events are
counted in ``skipped_non_numeric`` and neither open nor extend a window.

## Time: `processing` or `event`

``time: processing`` (the default) follows the gateway clock, which the rule
stage passes to ``tick(now)``: a value belongs to the window holding the clock
of the latest tick (before the first tick, the event's own time stands in), so
it may land up to one tick interval early; ticking before each event is exact
and cheap (``tick`` does nothing until a window is due). The clock never runs
backwards: a small step back is ignored; a step back of more than
``CLOCK_STEP_BACK`` (1 s: a clock set by NTP after a boot without RTC) emits
every open window as partial and restarts from the new time, counted in
``clock_jumps`` (count windows are left alone).

``time: event`` follows the events' own timestamps. The *watermark* is the
latest time known: the largest event time seen, or the ``now`` of the latest
tick if that is later (live, the gateway clock; in ``tidegate rules test``, the
replayed events' time). A window closes when ``end + allowed_lateness <=
watermark`` (a session when ``last value + gap + allowed_lateness <=
watermark``), so ``allowed_lateness`` is how long a window waits for readings
that are delayed in transit or stamped by a slow device clock.

**Late events.** With ``time: event``, an event whose windows have all closed is
late (sliding: its time is before ``watermark - allowed_lateness``; session: it
joins no open session and a session of it alone would already be closed).
``late: drop``, the only policy, discards it and counts it in ``late_events``:
counting a reading in a later window than the one it was taken in would
misreport that window. Raise ``allowed_lateness`` to keep late readings.
Beware that one event stamped far in the future moves the watermark there, and
every correct event after it is late.

## Output: one event per closed window and key

- ``value``: with one aggregate, its number; with several, a mapping from the
  aggregate names as written to numbers, e.g. ``{"avg": 21.4, "max": 23.0,
  "count": 60}``. An undefined aggregate (``avg`` of an empty window,
  ``stddev`` of one value: see ``tidegate.rules.operators.window.aggregate``) is left out of the
  mapping; a window whose only aggregate is undefined emits nothing and is
  counted in ``undefined_windows``.
- ``time``: the window's end: ``k·hop + size`` (tumbling, hopping), the
  triggering event's time (sliding), the last value's time (session, count).
  A window emitted early by flush carries the time it was cut.
- ``source``, ``name``, ``unit``, ``tags``: those of the key's latest event
  (include ``source`` in ``by`` to keep sources apart), plus the tags
  ``window_start`` and ``window_end`` (RFC 3339, UTC) and ``partial: "true"``
  on windows emitted before their end. The unit is the input's: right for
  avg, min, max, first, last, median, pNN, stddev and sum; count, rate
  (unit/s) and integral (unit·s) have their own.
- a new ``id``; times in processing time are the gateway clock's.

``emit_empty: true`` (tumbling and hopping only): once a key has been seen,
every window without values emits too (``count`` 0, ``sum`` 0.0, the other
aggregates undefined), so a silent sensor shows up as ``count: 0``. Such keys
are kept for ever. After a jump of more than ``MAX_EMPTY_RUN`` (1000) empty
windows, e.g. a clock set forward, only the last 1000 are emitted; the others
are counted in ``skipped_empty_windows``.

## Shutdown

``flush()`` (shutdown, reload) emits every window that holds values right away,
tagged ``partial: "true"``: a gateway should not lose the readings of the
current minute because it restarted, and consumers that want whole windows
drop the partial ones. Empty windows are not flushed; sliding windows have
nothing to flush.

## Memory and counters

A key's open windows hold at most ``max_values_per_key`` values (~76 bytes
each, plus ~700 bytes per key, measured by ``bench/rule_windows.py``); further
events are dropped and counted in ``overflow_events``. Values are kept for
``size`` (+ ``allowed_lateness``), a session's until it closes, a count
window's until it is full. Keys without values are forgotten (except with
``emit_empty``). ``counters()`` reports ``late_events``,
``skipped_non_numeric``, ``overflow_events``, ``undefined_windows``,
``skipped_empty_windows``, ``clock_jumps`` and ``open_windows`` (windows holding
values now).

## The code

``window.config`` holds the schema, one model per kind. This module holds
what every kind shares (numeric values, the time domain, counters, output
events): ``WindowOperator`` turns ``apply``/``tick``/``flush`` into calls of
``_add`` (take one value), ``_close_due`` (emit what the watermark has closed),
``_close_all`` (emit everything now) and ``open_windows``, which each kind
implements in its own module (``aligned`` for tumbling and hopping,
``sliding``, ``session``, ``count``), declaring the sections it runs. To keep
``tick`` cheap when the rule stage calls it for every event, a kind keeps
``_next_due``, a lower bound of the earliest time at which anything closes;
nothing is scanned before the watermark reaches it.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from tidegate.event import Event, Scalar, Value, new_event
from tidegate.rules.clock import CLOCK_STEP_BACK
from tidegate.rules.keys import StreamKey, key_function
from tidegate.rules.operator import NO_EVENTS, RuleTime, TimedOperator
from tidegate.rules.operators.registry import OperatorDeclarationError
from tidegate.rules.operators.window.aggregate import (
    NUMPY_FROM,
    compute,
    large_window_values,
    numeric_value,
    parse_aggregate,
)
from tidegate.rules.operators.window.config import WindowKindSection, WindowSection
from tidegate.timefmt import rfc3339


class WindowOperator(TimedOperator, key="window", order=40, schema=WindowSection):
    """Window rules: aggregate each stream over time, or over a number of events."""

    _kinds: ClassVar[dict[type[WindowKindSection], type[WindowOperator]]] = {}
    """The class of each kind, by its section: filled by the kinds' declarations."""

    _time_closes_windows = True
    """False for count windows: a clock step back leaves them alone."""

    def __init_subclass__(
        cls, *, sections: tuple[type[WindowKindSection], ...] = (), **kwargs: Any
    ) -> None:
        """A kind names the sections it runs: ``sections=(SlidingSection,)``."""
        super().__init_subclass__(**kwargs)
        for section in sections:
            taken = WindowOperator._kinds.get(section)
            if taken is not None:
                raise OperatorDeclarationError(
                    f"{cls.__qualname__}: {section.__name__} is run by {taken.__qualname__}"
                )
            WindowOperator._kinds[section] = cls

    @classmethod
    def build(cls, config: WindowKindSection, time: RuleTime = "processing") -> WindowOperator:
        """The operator of the config's kind (the window's own ``time`` is in its config)."""
        return WindowOperator._kinds[type(config)](config)

    def __init__(self, config: WindowKindSection) -> None:
        self._key = key_function(config.by)
        self._aggregates = tuple(parse_aggregate(name) for name in config.aggregate)
        self._event_time = config.time == "event"
        self._lateness = config.lateness if self._event_time else 0.0
        self._max_values = config.max_values_per_key
        if config.most_values >= NUMPY_FROM:
            large_window_values()  # numpy now, not in the event path at the first large window
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
