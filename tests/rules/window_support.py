"""The window tests' scenarios and naive reference models.

The reference models keep every window as a plain list and re-derive
everything from the definitions in ``tidegate.rules.operators.window.operator``;
the operator's buffers, indices and due-time shortcuts must agree with them on
random streams: which windows are emitted, at which step (tick or event), with
which values.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from pydantic import TypeAdapter

from tests.rules.test_aggregates import assert_same_results, reference_aggregates
from tidegate.event import Event, Value, new_event
from tidegate.rules.operator import TimedOperator
from tidegate.rules.operators.window.config import WindowKindSection, WindowSection
from tidegate.rules.operators.window.operator import WindowOperator
from tidegate.timefmt import rfc3339

T0 = 1_700_000_000.0

WINDOW_SECTION: TypeAdapter[WindowKindSection] = TypeAdapter(WindowSection)
"""Validates the value of a rule's ``window:`` key."""


def window(**config: Any) -> WindowOperator:
    return WindowOperator.build(WINDOW_SECTION.validate_python(config))


def reading(value: Value, time: float, source: str = "a", **kw: Any) -> Event:
    return new_event(source, "temperature", value, time=time, unit="C", **kw)


# -- the scenario: a sequence of ticks and arriving events ----------------------------


@dataclass(frozen=True)
class Arrival:
    source: str
    value: Value
    stamp: float  # the event's own time


@dataclass(frozen=True)
class Tick:
    now: float


Step = Arrival | Tick


def ref_numeric(value: Value) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, str):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


@dataclass
class Expected:
    """One window the operator must emit."""

    source: str
    start: float
    end: float
    step: int  # index of the step whose result holds it; len(steps) for flush
    time: float
    values: list[float] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    partial: bool = False


def run(op: TimedOperator, steps: list[Step], *, flush: bool = False) -> list[tuple[int, Event]]:
    emitted: list[tuple[int, Event]] = []
    for i, step in enumerate(steps):
        if isinstance(step, Tick):
            out = op.tick(step.now)
        else:
            out = op.apply(reading(step.value, step.stamp, step.source))
        emitted += [(i, e) for e in out]
    if flush:
        emitted += [(len(steps), e) for e in op.flush()]
    return emitted


def assert_emitted(
    emitted: list[tuple[int, Event]], expected: list[Expected], names: list[str]
) -> None:
    """Per source, the operator emitted exactly the expected windows, in order."""
    got: dict[str, list[tuple[int, Event]]] = defaultdict(list)
    for step, event in emitted:
        got[event.source].append((step, event))
    want: dict[str, list[Expected]] = defaultdict(list)
    for x in expected:
        want[x.source].append(x)
    assert got.keys() == want.keys()
    for source, windows in want.items():
        observed = got[source]
        assert [(s, e.tags and e.tags["window_start"]) for s, e in observed] == [
            (x.step, rfc3339(x.start)) for x in windows
        ]
        for (_, event), x in zip(observed, windows, strict=True):
            assert event.tags is not None
            assert set(event.tags) <= {"window_start", "window_end", "partial"}
            assert event.tags["window_end"] == rfc3339(x.end)
            assert event.time == x.time
            assert (event.tags.get("partial") == "true") == x.partial
            assert event.name == "temperature" and event.unit == "C"
            assert isinstance(event.value, dict)
            expected_value = reference_aggregates(names, x.values, x.stamps)
            assert_same_results(numbers_of(event.value), expected_value, x.values, x.stamps)


def numbers_of(value: dict[str, Any]) -> dict[str, int | float]:
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values())
    return dict(value)


# -- reference models -------------------------------------------------------------------


def aligned_reference(
    steps: list[Step],
    size: float,
    hop: float,
    *,
    event_time: bool,
    lateness: float = 0.0,
    emit_empty: bool = False,
    flush: bool = False,
) -> tuple[list[Expected], int]:
    """Windows [k*hop, k*hop + size); a value counts in those not closed when it arrives."""
    watermark = -math.inf
    history: list[float] = []  # the watermark after each step
    cells: dict[tuple[str, int], Expected] = {}
    first_window: dict[str, int] = {}
    late = 0
    for step in steps:
        if isinstance(step, Tick):
            watermark = max(watermark, step.now)
        elif (value := ref_numeric(step.value)) is not None:
            t = step.stamp if event_time else watermark
            around = range(math.floor(t / hop) - math.ceil(size / hop) - 1, math.floor(t / hop) + 2)
            holding = [k for k in around if k * hop <= t < k * hop + size]
            still_open = [k for k in holding if k * hop + size + lateness > watermark]
            if not still_open:
                late += 1
            for k in still_open:
                cell = cells.setdefault(
                    (step.source, k), Expected(step.source, k * hop, k * hop + size, -1, 0.0)
                )
                cell.values.append(value)
                cell.stamps.append(step.stamp)
            if still_open:
                first_window[step.source] = min(
                    first_window.get(step.source, still_open[0]), *still_open
                )
            if event_time:
                watermark = max(watermark, t)
        history.append(watermark)
    if emit_empty:
        for source, first in first_window.items():
            k = first
            while k * hop + size + lateness <= watermark:
                cells.setdefault((source, k), Expected(source, k * hop, k * hop + size, -1, 0.0))
                k += 1
    expected = []
    for cell in cells.values():
        due = cell.end + lateness
        closing = [i for i, w in enumerate(history) if w >= due]
        if closing:
            cell.step, cell.time = closing[0], cell.end
        elif flush and cell.values:
            cell.step, cell.time, cell.partial = len(steps), min(cell.end, watermark), True
        else:
            continue
        expected.append(cell)
    expected.sort(key=lambda x: (x.step, x.start))
    return expected, late


def sliding_reference(
    steps: list[Step], size: float, *, event_time: bool, lateness: float = 0.0
) -> tuple[list[Expected], int]:
    """On each value at t: the source's values so far with time in (t - size, t]."""
    watermark = -math.inf
    kept: dict[str, list[tuple[float, float, float]]] = defaultdict(list)  # (t, stamp, value)
    expected, late = [], 0
    for i, step in enumerate(steps):
        if isinstance(step, Tick):
            watermark = max(watermark, step.now)
            continue
        value = ref_numeric(step.value)
        if value is None:
            continue
        t = step.stamp if event_time else watermark
        if event_time and t < watermark - lateness:
            late += 1
            continue
        kept[step.source].append((t, step.stamp, value))
        inside = [(s, v) for (ti, s, v) in kept[step.source] if t - size < ti <= t]
        expected.append(
            Expected(step.source, t - size, t, i, t, [v for _, v in inside], [s for s, _ in inside])
        )
        if event_time:
            watermark = max(watermark, t)
    return expected, late


def session_reference(
    steps: list[Step], gap: float, *, event_time: bool, lateness: float = 0.0, flush: bool = False
) -> tuple[list[Expected], int]:
    """Runs of values less than gap apart; closed when last + gap + lateness <= watermark."""
    watermark = -math.inf
    sessions: dict[str, list[list[tuple[float, float, float]]]] = defaultdict(list)
    expected: list[Expected] = []
    late = 0

    def close(step: int, *, everything: bool = False) -> None:
        for source, runs in sessions.items():
            for run_ in sorted(runs):
                times = [t for t, _, _ in run_]
                if everything or max(times) + gap + lateness <= watermark:
                    runs.remove(run_)
                    expected.append(expected_window(source, run_, step, partial=everything))

    for i, step in enumerate(steps):
        if isinstance(step, Tick):
            watermark = max(watermark, step.now)
        elif (value := ref_numeric(step.value)) is not None:
            t = step.stamp if event_time else watermark
            runs = sessions[step.source]
            touched = [
                r for r in runs if min(x[0] for x in r) - gap < t < max(x[0] for x in r) + gap
            ]
            if not touched and event_time and t + gap + lateness <= watermark:
                late += 1
            else:
                merged = [s for r in touched for s in r] + [(t, step.stamp, value)]
                runs[:] = [r for r in runs if r not in touched] + [merged]
                if event_time:
                    watermark = max(watermark, t)
        close(i)
    if flush:
        close(len(steps), everything=True)
    return expected, late


def expected_window(
    source: str, values: list[tuple[float, float, float]], step: int, *, partial: bool
) -> Expected:
    """The window of ``values`` (window time, stamp, value), closed at ``step``: spanning
    their window times, its values in window-time order (stable)."""
    times = [t for t, _, _ in values]
    ordered = sorted(values, key=lambda s: s[0])
    return Expected(
        source,
        min(times),
        max(times),
        step,
        max(times),
        [v for _, _, v in ordered],
        [s for _, s, _ in ordered],
        partial=partial,
    )


def count_reference(
    steps: list[Step], count: int, *, event_time: bool = False, flush: bool = False
) -> list[Expected]:
    """Every `count` values of a source, in arrival order."""
    clock = -math.inf
    pending: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    expected = []

    def emit(source: str, step: int, *, partial: bool) -> None:
        expected.append(expected_window(source, pending.pop(source), step, partial=partial))

    for i, step in enumerate(steps):
        if isinstance(step, Tick):
            clock = max(clock, step.now)
        elif (value := ref_numeric(step.value)) is not None:
            t = step.stamp if event_time else clock
            pending[step.source].append((t, step.stamp, value))
            if len(pending[step.source]) == count:
                emit(step.source, i, partial=False)
    if flush:
        for source in list(pending):
            emit(source, len(steps), partial=True)
    return expected


# -- random scenarios -----------------------------------------------------------------

values: st.SearchStrategy[Value] = (
    st.floats(-1000, 1000, allow_nan=False)
    | st.sampled_from([0.0, 1.0, 2.5, 2.5, -3.0])
    | st.integers(-5, 5)
    | st.booleans()
    | st.just("open")  # not numeric: skipped
    | st.sampled_from([math.nan, math.inf])  # not finite: skipped
)
increments = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.5, 9.75]) | st.floats(0, 6)
sources = st.sampled_from(["a", "b", "c"])


@st.composite
def event_time_steps(draw: st.DrawFn, max_delay: float, max_events: int = 40) -> list[Step]:
    """Events stamped in order, arriving up to max_delay late, with ticks now and then."""
    stamp = T0 + draw(st.sampled_from([0.0, 0.3, 7.25]))
    stamped: list[tuple[float, Arrival]] = []
    for _ in range(draw(st.integers(0, max_events))):
        stamp += draw(increments)
        delay = draw(st.floats(0, max_delay)) if max_delay else 0.0
        stamped.append((stamp + delay, Arrival(draw(sources), draw(values), stamp)))
    stamped.sort(key=lambda pair: pair[0])  # arrival order
    steps: list[Step] = []
    for arrives, arrival in stamped:
        if draw(st.integers(0, 5)) == 0:
            steps.append(Tick(arrives))  # the gateway clock when it arrives
        steps.append(arrival)
    return steps


@st.composite
def processing_time_steps(draw: st.DrawFn, max_events: int = 40) -> list[Step]:
    """The clock ticks forward; events carry their own, unrelated stamps."""
    clock = T0 + draw(st.sampled_from([0.0, 0.3, 7.25]))
    steps: list[Step] = [Tick(clock)]
    for _ in range(draw(st.integers(0, max_events))):
        if draw(st.booleans()):
            clock += draw(increments)
            steps.append(Tick(clock))
        stamp = clock + draw(st.sampled_from([0.0, -1.0, 5.0]) | st.floats(-30, 30))
        steps.append(Arrival(draw(sources), draw(values), stamp))
    return steps


def final_tick(steps: list[Step], margin: float) -> list[Step]:
    latest = max((s.now if isinstance(s, Tick) else s.stamp for s in steps), default=T0)
    return [*steps, Tick(latest + margin)]


def non_numeric(steps: list[Step]) -> int:
    return sum(1 for s in steps if isinstance(s, Arrival) and ref_numeric(s.value) is None)


sizes = st.sampled_from([0.5, 1.0, 2.5, 4.0, 10.0])
hops = st.sampled_from([0.5, 1.0, 2.0, 2.5])
lateness = st.sampled_from([0.0, 0.5, 2.0, 6.0])


@dataclass(frozen=True)
class Scenario:
    steps: list[Step]
    event_time: bool
    lateness: float  # allowed_lateness
    max_delay: float  # how late events arrive (event time)

    @property
    def time(self) -> str:
        return "event" if self.event_time else "processing"


@st.composite
def scenarios(draw: st.DrawFn, event_time: bool | None = None) -> Scenario:
    if not (draw(st.booleans()) if event_time is None else event_time):
        return Scenario(draw(processing_time_steps()), False, 0.0, 0.0)
    max_delay = draw(st.sampled_from([0.0, 1.0, 5.0]))
    return Scenario(draw(event_time_steps(max_delay)), True, draw(lateness), max_delay)
