"""The window operator against naive reference models, plus its documented edge cases.

The reference models below keep every window as a plain list and re-derive
everything from the definitions in ``tidegate.rules.operators.window.operator``; the operator's
buffers, indices and due-time shortcuts must agree with them on random streams:
which windows are emitted, at which step (tick or event), with which values.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.rules.test_aggregates import ALL_AGGREGATES, assert_same_results, reference_aggregates
from tidegate.event import Event, Value, new_event
from tidegate.rules.operator import TimedOperator
from tidegate.rules.operators.window.base import CLOCK_STEP_BACK, MAX_EMPTY_RUN, WindowOperator
from tidegate.rules.operators.window.operator import KEY, Config, build
from tidegate.timefmt import rfc3339

T0 = 1_700_000_000.0


def window(**config: Any) -> WindowOperator:
    return build(Config.model_validate(config))


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
                    ordered = sorted(run_, key=lambda s: s[0])  # by time, stable
                    expected.append(
                        Expected(
                            source,
                            min(times),
                            max(times),
                            step,
                            max(times),
                            [v for _, _, v in ordered],
                            [s for _, s, _ in ordered],
                            partial=everything,
                        )
                    )

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


def count_reference(
    steps: list[Step], count: int, *, event_time: bool = False, flush: bool = False
) -> list[Expected]:
    """Every `count` values of a source, in arrival order."""
    clock = -math.inf
    pending: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    expected = []

    def emit(source: str, step: int, *, partial: bool) -> None:
        chunk = pending.pop(source)
        times = [t for t, _, _ in chunk]
        ordered = sorted(chunk, key=lambda s: s[0])  # the window's values in time order
        expected.append(
            Expected(
                source,
                min(times),
                max(times),
                step,
                max(times),
                [v for _, _, v in ordered],
                [s for _, s, _ in ordered],
                partial=partial,
            )
        )

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


# -- every kind against its reference -------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(sizes, hops, st.booleans(), scenarios(event_time=True))
def test_tumbling_and_hopping_in_event_time_match_the_reference(
    size: float, hop: float, tumbling: bool, scenario: Scenario
) -> None:
    hop = size if tumbling else min(hop, size)
    allowed = scenario.lateness
    steps = final_tick(scenario.steps, size + allowed + 1)
    kind = {"kind": "tumbling"} if tumbling else {"kind": "hopping", "hop": hop}
    op = window(**kind, size=size, time="event", allowed_lateness=allowed, aggregate=ALL_AGGREGATES)
    expected, late = aligned_reference(steps, size, hop, event_time=True, lateness=allowed)
    assert_emitted(run(op, steps), expected, ALL_AGGREGATES)
    assert op.late_events == late
    assert op.skipped_non_numeric == non_numeric(steps)
    assert op.open_windows == 0
    if allowed >= scenario.max_delay and not any(isinstance(s, Tick) for s in scenario.steps):
        assert late == 0  # lateness covering the delays keeps every value


@settings(max_examples=100, deadline=None)
@given(sizes, hops, st.booleans(), st.booleans(), processing_time_steps())
def test_tumbling_and_hopping_in_processing_time_match_the_reference(
    size: float, hop: float, tumbling: bool, emit_empty: bool, steps: list[Step]
) -> None:
    hop = size if tumbling else min(hop, size)
    steps = final_tick(steps, size + 1)
    kind = {"kind": "tumbling"} if tumbling else {"kind": "hopping", "hop": hop}
    op = window(**kind, size=size, emit_empty=emit_empty, aggregate=ALL_AGGREGATES)
    expected, late = aligned_reference(steps, size, hop, event_time=False, emit_empty=emit_empty)
    assert late == 0
    assert_emitted(run(op, steps), expected, ALL_AGGREGATES)
    assert op.late_events == 0 and op.skipped_empty_windows == 0


@settings(max_examples=60, deadline=None)
@given(sizes, hops, scenarios())
def test_flush_emits_the_open_windows_as_partial(
    size: float, hop: float, scenario: Scenario
) -> None:
    hop = min(hop, size)
    op = window(
        kind="hopping",
        size=size,
        hop=hop,
        time=scenario.time,
        allowed_lateness=scenario.lateness,
        aggregate=ALL_AGGREGATES,
    )
    expected, _ = aligned_reference(
        scenario.steps,
        size,
        hop,
        event_time=scenario.event_time,
        lateness=scenario.lateness,
        flush=True,
    )
    assert_emitted(run(op, scenario.steps, flush=True), expected, ALL_AGGREGATES)
    assert op.open_windows == 0 and op.flush() == []


@settings(max_examples=100, deadline=None)
@given(sizes, scenarios())
def test_sliding_matches_the_reference(size: float, scenario: Scenario) -> None:
    op = window(
        kind="sliding",
        size=size,
        time=scenario.time,
        allowed_lateness=scenario.lateness,
        aggregate=ALL_AGGREGATES,
    )
    expected, late = sliding_reference(
        scenario.steps, size, event_time=scenario.event_time, lateness=scenario.lateness
    )
    assert_emitted(run(op, scenario.steps, flush=True), expected, ALL_AGGREGATES)
    assert op.late_events == late
    assert op.skipped_non_numeric == non_numeric(scenario.steps)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([0.5, 1.0, 3.0, 10.0]), st.booleans(), scenarios())
def test_session_matches_the_reference(gap: float, flush: bool, scenario: Scenario) -> None:
    steps, allowed = scenario.steps, scenario.lateness
    if not flush:
        steps = final_tick(steps, gap + allowed + 1)
    op = window(
        kind="session",
        gap=gap,
        time=scenario.time,
        allowed_lateness=allowed,
        aggregate=ALL_AGGREGATES,
    )
    expected, late = session_reference(
        steps, gap, event_time=scenario.event_time, lateness=allowed, flush=flush
    )
    assert_emitted(run(op, steps, flush=flush), expected, ALL_AGGREGATES)
    assert op.late_events == late
    assert op.open_windows == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 7), st.booleans(), processing_time_steps())
def test_count_matches_the_reference(count: int, flush: bool, steps: list[Step]) -> None:
    op = window(kind="count", count=count, aggregate=ALL_AGGREGATES)
    assert_emitted(
        run(op, steps, flush=flush), count_reference(steps, count, flush=flush), ALL_AGGREGATES
    )
    assert op.skipped_non_numeric == non_numeric(steps)


@settings(max_examples=10, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=250, max_size=600),
    st.sampled_from(["tumbling", "session", "count"]),
)
def test_windows_of_many_values_match_the_reference(numbers: list[float], kind: str) -> None:
    # Large enough for the numpy implementation of the aggregates.
    steps: list[Step] = [Arrival("a", v, T0 + i * 0.01) for i, v in enumerate(numbers)]
    steps = final_tick(steps, 100.0)
    lengths = {"tumbling": {"size": 60}, "session": {"gap": 1}, "count": {"count": 220}}[kind]
    op = window(kind=kind, time="event", aggregate=ALL_AGGREGATES, **lengths)
    if kind == "tumbling":
        expected, _ = aligned_reference(steps, 60.0, 60.0, event_time=True)
    elif kind == "session":
        expected, _ = session_reference(steps, 1.0, event_time=True)
    else:
        expected = count_reference(steps, 220, event_time=True)
    assert_emitted(run(op, steps), expected, ALL_AGGREGATES)


# -- documented behaviour, case by case --------------------------------------------------


def values_of(events: Sequence[Event]) -> list[Value]:
    return [e.value for e in events]


def test_the_module_is_a_rule_operator() -> None:
    op: TimedOperator = build(Config.model_validate({"kind": "tumbling", "size": "1m"}))
    assert KEY == "window"
    assert isinstance(op, WindowOperator)


def test_tick_closes_a_window_without_any_event_arriving() -> None:
    op = window(kind="tumbling", size="1m", aggregate=["count", "avg"])
    assert not op.tick(T0 + 5)  # T0 + 5 is 22:13:25 UTC; its minute ends at T0 + 40
    assert not op.apply(reading(20.0, 0.0))
    assert not op.apply(reading(22.0, 0.0))
    assert not op.tick(T0 + 39.999)
    (closed,) = op.tick(T0 + 41)
    assert closed.value == {"count": 2, "avg": 21.0}
    assert closed.time == T0 + 40
    assert closed.tags == {
        "window_start": rfc3339(T0 - 20),
        "window_end": rfc3339(T0 + 40),
    }
    assert not op.tick(T0 + 500)  # an empty window emits nothing by default


def test_processing_time_follows_the_clock_not_the_event_stamps() -> None:
    op = window(kind="tumbling", size=10, aggregate="count")
    op.tick(T0)
    # Stamped in 1970 and in the future: the window is the clock's.
    op.apply(reading(1.0, 5.0))
    op.apply(reading(1.0, T0 + 3600))
    op.tick(T0 + 9)
    op.apply(reading(1.0, T0 + 9))
    (closed,) = op.tick(T0 + 10)
    assert closed.value == 3 and closed.time == T0 + 10


def test_event_time_follows_the_stamps_and_tick_moves_the_watermark() -> None:
    op = window(kind="tumbling", size=10, time="event", aggregate="count")
    assert not op.apply(reading(1.0, T0 + 1))
    assert op.apply(reading(1.0, T0 + 12)) != ()  # the watermark passed T0 + 10
    assert op.watermark == T0 + 12
    (second,) = op.tick(T0 + 20)  # the clock moves the watermark too
    assert second.value == 1 and second.time == T0 + 20
    assert not op.tick(T0 + 15) and op.watermark == T0 + 20  # never backwards


def test_late_events_are_dropped_and_counted() -> None:
    op = window(kind="tumbling", size=10, time="event", aggregate="count")
    op.apply(reading(1.0, T0 + 1))
    (closed,) = op.apply(reading(1.0, T0 + 10))  # exactly the end: the window closes
    assert closed.value == 1
    assert not op.apply(reading(1.0, T0 + 9.999))
    assert op.late_events == 1
    (later,) = op.tick(T0 + 20)
    assert later.value == 1  # the late one was not counted in the next window


def test_allowed_lateness_keeps_a_window_open_for_late_events() -> None:
    op = window(kind="tumbling", size=10, time="event", allowed_lateness="5s", aggregate="count")
    op.apply(reading(1.0, T0 + 1))
    assert not op.apply(reading(1.0, T0 + 14.9))
    assert not op.apply(reading(1.0, T0 + 9))  # late by 5.9 s, within the 5 s + window
    (closed,) = op.apply(reading(1.0, T0 + 15))
    assert closed.value == 2 and closed.time == T0 + 10
    assert not op.apply(reading(1.0, T0 + 9.5))
    assert op.late_events == 1


def test_an_out_of_order_event_reaches_a_window_before_the_keys_first() -> None:
    op = window(
        kind="hopping", size=10, hop=5, time="event", allowed_lateness=10, aggregate="count"
    )
    op.apply(reading(1.0, T0 + 17))  # windows [T0+10, T0+20) and [T0+15, T0+25)
    op.apply(reading(1.0, T0 + 12))  # also in [T0+5, T0+15), still open for lateness
    emitted = op.tick(T0 + 100)
    assert [(e.tags and e.tags["window_start"], e.value) for e in emitted] == [
        (rfc3339(T0 + 5), 1),
        (rfc3339(T0 + 10), 2),
        (rfc3339(T0 + 15), 1),
    ]


def test_hopping_windows_overlap() -> None:
    op = window(kind="hopping", size=15, hop=5, time="event", aggregate="sum")
    emitted = [*op.apply(reading(1.0, T0 + 1)), *op.apply(reading(2.0, T0 + 6))]
    assert len(emitted) == 1  # the watermark at T0 + 6 closed [T0 - 10, T0 + 5)
    emitted += op.apply(reading(4.0, T0 + 16))
    assert len(emitted) == 3
    emitted += op.tick(T0 + 100)
    # Each value counts in size/hop = 3 windows.
    assert [(e.time - T0, e.value) for e in emitted] == [
        (5.0, 1.0),
        (10.0, 3.0),
        (15.0, 3.0),
        (20.0, 6.0),
        (25.0, 4.0),
        (30.0, 4.0),
    ]


def test_a_session_closes_after_the_gap_and_spans_first_to_last_value() -> None:
    op = window(kind="session", gap=30, aggregate=["count", "first", "last"])
    op.tick(T0)
    op.apply(reading(1.0, 0))
    op.tick(T0 + 29.9)
    op.apply(reading(2.0, 0))  # 29.9 s later: the same session
    assert not op.tick(T0 + 59.8)
    (session,) = op.tick(T0 + 59.9)  # 30 s of silence
    assert session.value == {"count": 2, "first": 1.0, "last": 2.0}
    assert session.time == T0 + 29.9
    assert session.tags == {"window_start": rfc3339(T0), "window_end": rfc3339(T0 + 29.9)}


def test_a_value_exactly_one_gap_after_the_last_starts_a_new_session() -> None:
    op = window(kind="session", gap=30, time="event", allowed_lateness=60, aggregate="count")
    op.apply(reading(1.0, T0))
    op.apply(reading(1.0, T0 + 30))
    op.apply(reading(1.0, T0 + 15))  # out of order: joins and bridges the two
    op.apply(reading(1.0, T0 + 100))
    assert values_of(op.tick(T0 + 1000)) == [3, 1]


def test_a_late_event_that_joins_an_open_session_is_kept() -> None:
    op = window(kind="session", gap=10, time="event", aggregate="count")
    op.apply(reading(1.0, T0 + 20))
    op.apply(reading(1.0, T0 + 28))
    assert not op.apply(reading(1.0, T0 + 12))  # alone it would be closed; it joins
    assert not op.apply(reading(1.0, T0 + 1))  # joins nothing and is closed: late
    assert not op.apply(reading(1.0, T0 + 18, source="b"))  # would close at T0 + 28: late
    assert op.late_events == 2
    assert values_of(op.tick(T0 + 100)) == [3]


def test_count_windows_close_on_the_nth_value_per_key() -> None:
    op = window(kind="count", count=3, aggregate="sum")
    out = [e for i in range(8) for e in op.apply(reading(float(i), T0 + i, source="ab"[i % 2]))]
    assert [(e.source, e.value) for e in out] == [("a", 6.0), ("b", 9.0)]  # 0+2+4, 1+3+5
    assert not op.tick(T0 + 1e6)  # time never closes a count window
    flushed = op.flush()
    assert [(e.source, e.value) for e in flushed] == [("a", 6.0), ("b", 7.0)]
    assert all(e.tags and e.tags["partial"] == "true" for e in flushed)


def test_keys_are_kept_apart_and_by_can_merge_sources() -> None:
    per_source = window(kind="tumbling", size=10, time="event", aggregate="count")
    per_name = window(kind="tumbling", size=10, time="event", aggregate="count", by=["name"])
    for op in (per_source, per_name):
        for i, source in enumerate(["gh1", "gh2", "gh1"]):
            op.apply(reading(1.0, T0 + i, source=source))
    assert sorted((e.source, e.value) for e in per_source.tick(T0 + 10)) == [
        ("gh1", 2),
        ("gh2", 1),
    ]
    # One window for all sources; it carries the latest event's source.
    assert [(e.source, e.value) for e in per_name.tick(T0 + 10)] == [("gh1", 3)]


def test_output_shape_one_aggregate_a_number_several_a_mapping() -> None:
    tags = {"room": "north"}
    single = window(kind="tumbling", size=10, time="event", aggregate="max")
    several = window(kind="tumbling", size=10, time="event", aggregate=["max", "p50"])
    for op in (single, several):
        op.apply(reading(1, T0, tags=tags))
        op.apply(reading(3.5, T0 + 1, tags=tags))
    (one,) = single.tick(T0 + 10)
    (two,) = several.tick(T0 + 10)
    assert one.value == 3.5 and two.value == {"max": 3.5, "p50": 2.25}
    for event in (one, two):
        assert (event.source, event.name, event.unit, event.seq) == ("a", "temperature", "C", 0)
        assert event.tags == {
            "room": "north",
            "window_start": rfc3339(T0),
            "window_end": rfc3339(T0 + 10),
        }
    assert one.id != two.id


def test_an_undefined_single_aggregate_emits_nothing_and_is_counted() -> None:
    op = window(kind="tumbling", size=10, time="event", aggregate="stddev")
    op.apply(reading(1.0, T0))
    assert op.tick(T0 + 10) == []
    assert op.undefined_windows == 1
    several = window(kind="tumbling", size=10, time="event", aggregate=["stddev", "count"])
    several.apply(reading(1.0, T0))
    assert values_of(several.tick(T0 + 10)) == [{"count": 1}]


def test_only_numbers_are_aggregated_and_the_rest_is_counted() -> None:
    op = window(kind="tumbling", size=10, time="event", aggregate=["count", "avg"])
    mixed: list[Value] = [True, False, True, 4, "on", {"x": 1.0}, math.nan, -math.inf]
    for value in mixed:
        op.apply(reading(value, T0))
    for bad_time in (math.nan, math.inf):
        op.apply(Event("a", "temperature", 1.0, bad_time))
    assert values_of(op.tick(T0 + 10)) == [{"count": 4, "avg": 1.5}]
    assert op.skipped_non_numeric == 6


def test_emit_empty_reports_silent_windows_as_count_zero() -> None:
    op = window(kind="tumbling", size=10, emit_empty=True, aggregate=["count", "sum", "avg"])
    op.tick(T0)
    op.apply(reading(5.0, 0))
    emitted = op.tick(T0 + 30)
    assert values_of(emitted) == [
        {"count": 1, "sum": 5.0, "avg": 5.0},
        {"count": 0, "sum": 0.0},
        {"count": 0, "sum": 0.0},
    ]
    assert [e.time - T0 for e in emitted] == [10.0, 20.0, 30.0]


def test_emit_empty_after_a_clock_jump_emits_only_the_latest_windows() -> None:
    op = window(kind="tumbling", size=1, emit_empty=True, aggregate="count")
    op.tick(T0)
    op.apply(reading(5.0, 0))
    emitted = op.tick(T0 + 1 + MAX_EMPTY_RUN + 250)
    assert len(emitted) == 1 + MAX_EMPTY_RUN
    assert op.skipped_empty_windows == 250
    assert emitted[1].time == T0 + 252 and emitted[-1].time == T0 + 1 + MAX_EMPTY_RUN + 250


def test_flush_emits_open_windows_now_tagged_partial() -> None:
    op = window(kind="tumbling", size=60, aggregate=["count"])
    op.tick(T0)
    op.apply(reading(1.0, 0))
    op.tick(T0 + 10)
    op.apply(reading(1.0, 0))
    assert op.open_windows == 1
    (partial,) = op.flush()
    assert partial.value == 2
    assert partial.time == T0 + 10  # cut now, before its end at T0 + 40
    assert partial.tags is not None and partial.tags["partial"] == "true"
    assert partial.tags["window_end"] == rfc3339(T0 + 40)
    assert op.open_windows == 0 and op.flush() == []


def test_sliding_emits_on_every_event_and_never_on_tick_or_flush() -> None:
    op = window(kind="sliding", size=10, time="event", aggregate=["count", "sum"])
    out = [op.apply(reading(float(i), T0 + 4 * i)) for i in range(5)]  # T0, +4, +8, +12, +16
    assert [values_of(e) for e in out] == [
        [{"count": 1, "sum": 0.0}],
        [{"count": 2, "sum": 1.0}],
        [{"count": 3, "sum": 3.0}],
        [{"count": 3, "sum": 6.0}],  # (T0+2, T0+12]: T0 is out
        [{"count": 3, "sum": 9.0}],
    ]
    assert out[3][0].tags == {"window_start": rfc3339(T0 + 2), "window_end": rfc3339(T0 + 12)}
    assert op.open_windows == 1
    assert not op.tick(T0 + 1000) and op.open_windows == 0  # aged out, forgotten
    assert not op.flush()


def test_a_key_holds_at_most_max_values_per_key() -> None:
    op = window(kind="tumbling", size=10, time="event", aggregate="count", max_values_per_key=3)
    for i in range(5):
        op.apply(reading(1.0, T0 + i))
    op.apply(reading(1.0, T0 + 1, source="other"))
    assert op.overflow_events == 2
    assert sorted(e.value for e in op.tick(T0 + 10) if isinstance(e.value, int)) == [1, 3]


def test_a_clock_set_back_emits_the_open_windows_and_starts_again() -> None:
    op = window(kind="tumbling", size=60, aggregate="count")
    op.tick(T0)
    op.apply(reading(1.0, 0))
    assert not op.tick(T0 - CLOCK_STEP_BACK / 2)  # a small step back is ignored
    op.apply(reading(1.0, 0))
    (cut,) = op.tick(T0 - 3600)
    assert cut.value == 2 and cut.tags and cut.tags["partial"] == "true"
    assert op.clock_jumps == 1 and op.watermark == T0 - 3600
    op.apply(reading(1.0, 0))
    (after,) = op.tick(T0 - 3600 + 60)
    assert after.value == 1 and after.time == T0 - 3600 + 40


def test_a_clock_set_back_leaves_count_windows_alone() -> None:
    op = window(kind="count", count=2, aggregate="count")
    op.tick(T0)
    op.apply(reading(1.0, 0))
    assert not op.tick(T0 - 3600)
    assert op.clock_jumps == 1
    assert values_of(op.apply(reading(1.0, 0))) == [2]


def test_open_windows_counts_overlapping_windows_and_sessions() -> None:
    hopping = window(kind="hopping", size=30, hop=10, time="event")
    hopping.apply(reading(1.0, T0 + 1))
    assert hopping.open_windows == 3
    sessions = window(kind="session", gap=5, time="event", allowed_lateness=100, by=["source"])
    for t in (0, 10, 20):
        sessions.apply(reading(1.0, T0 + t))
    sessions.apply(reading(1.0, T0, source="b"))
    assert sessions.open_windows == 4
    assert sessions.counters()["open_windows"] == 4
    assert set(sessions.counters()) == {
        "late_events",
        "skipped_non_numeric",
        "overflow_events",
        "undefined_windows",
        "skipped_empty_windows",
        "clock_jumps",
        "open_windows",
    }


# -- configuration --------------------------------------------------------------------------


def test_config_reads_durations_and_a_single_aggregate() -> None:
    config = Config.model_validate(
        {"kind": "hopping", "size": "2m", "hop": "500ms", "aggregate": "p99.9", "by": ["source"]}
    )
    assert (config.size, config.hop, config.aggregate, config.by) == (
        120.0,
        0.5,
        ["p99.9"],
        ["source"],
    )
    defaults = Config.model_validate({"kind": "session", "gap": 30})
    assert (defaults.time, defaults.late, defaults.aggregate, defaults.emit_empty) == (
        "processing",
        "drop",
        ["avg"],
        False,
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "tumbling"}, "a tumbling window needs `size`"),
        ({"kind": "hopping", "size": 10}, "a hopping window needs `hop`"),
        ({"kind": "session"}, "a session window needs `gap`"),
        ({"kind": "count"}, "a count window needs `count`"),
        ({"kind": "tumbling", "size": 10, "gap": 5}, "`gap` does not apply to a tumbling window"),
        ({"kind": "count", "count": 5, "size": 5}, "`size` does not apply to a count window"),
        ({"kind": "hopping", "size": 5, "hop": 10}, "hop .10s. is longer than size .5s."),
        ({"kind": "tumbling", "size": 0}, "greater than 0"),
        ({"kind": "tumbling", "size": "-1s"}, "is not a duration"),
        ({"kind": "count", "count": 0}, "greater than or equal to 1"),
        (
            {"kind": "tumbling", "size": 10, "allowed_lateness": 5},
            "allowed_lateness applies to time: event",
        ),
        (
            {"kind": "sliding", "size": 10, "emit_empty": True},
            "emit_empty applies to tumbling and hopping",
        ),
        ({"kind": "tumbling", "size": 10, "aggregate": []}, "at least 1 item"),
        ({"kind": "tumbling", "size": 10, "aggregate": ["avg", "avg"]}, "lists avg more than once"),
        (
            {"kind": "tumbling", "size": 10, "aggregate": ["average"]},
            "'average' is not an aggregate",
        ),
        ({"kind": "tumbling", "size": 10, "late": "keep"}, "Input should be 'drop'"),
        ({"kind": "tumbling", "size": 10, "time": "wall"}, "'processing' or 'event'"),
        ({"kind": "rolling", "size": 10}, "'tumbling', 'hopping', 'sliding', 'session' or 'count'"),
        ({"kind": "tumbling", "size": 10, "sise": 5}, "Extra inputs are not permitted"),
        ({"kind": "tumbling", "size": 10, "by": ["room"]}, "'room' is not a key field"),
        (
            {"kind": "count", "count": 10, "max_values_per_key": 5},
            "count .10. is above max_values_per_key",
        ),
    ],
)
def test_config_errors_say_what_is_wrong(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Config.model_validate(config)
