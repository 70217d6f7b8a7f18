"""The window operator against naive reference models (``tests.rules.window_support``).

On random streams, every kind must emit the windows its reference derives from
the definitions in ``tidegate.rules.operators.window.operator``: which windows,
at which step (tick or event), with which values.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.rules.test_aggregates import ALL_AGGREGATES
from tests.rules.window_support import (
    T0,
    Arrival,
    Scenario,
    Step,
    Tick,
    aligned_reference,
    assert_emitted,
    count_reference,
    final_tick,
    hops,
    non_numeric,
    processing_time_steps,
    run,
    scenarios,
    session_reference,
    sizes,
    sliding_reference,
    window,
)

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
