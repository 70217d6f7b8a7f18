"""Stream operators: deadband, on_change, throttle, dedup, range."""

from __future__ import annotations

import math
import re
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.rules.rule_support import docstring_rules
from tidegate.event import Event, Value, new_event
from tidegate.rules.operator import Operator, TimedOperator
from tidegate.rules.operators.deadband import Deadband, DeadbandSection
from tidegate.rules.operators.dedup import Dedup, DedupSection
from tidegate.rules.operators.on_change import OnChange, OnChangeSection
from tidegate.rules.operators.range_check import RangeCheck, RangeSection
from tidegate.rules.operators.registry import OPERATORS
from tidegate.rules.operators.throttle import Throttle, ThrottleFirst, ThrottleLast, ThrottleSection


def reading(value: Value, t: float = 0.0, source: str = "s1", name: str = "temp") -> Event:
    return new_event(source, name, value, time=t)


def passed(op: Operator, *events: Event) -> list[Event]:
    """Apply events in turn; return everything the operator passed on."""
    return [out for e in events for out in op.apply(e)]


@pytest.mark.parametrize("key", ["deadband", "on_change", "throttle", "dedup", "range"])
def test_docstring_examples_load_and_build(key: str) -> None:
    operator = OPERATORS[key]
    examples = docstring_rules(sys.modules[operator.__module__])
    values: list[Any] = [rule[key] for rule in examples if key in rule]
    assert values, f"{operator.__module__} has no YAML example for {key!r}"
    for value in values:
        op = operator.build(operator.schema.model_validate(value))
        assert isinstance(op, operator)
        assert set(op.counters().values()) == {0}


def test_stateless_operators_are_not_time_driven() -> None:
    # A static check as much as a runtime one: mypy verifies each assignment.
    untimed: list[Operator] = [
        Deadband(DeadbandSection(abs=1)),
        OnChange(OnChangeSection()),
        Throttle.build(ThrottleSection(interval=1)),
        Dedup.build(DedupSection(within=1), "event"),
        RangeCheck(RangeSection(min=0)),
    ]
    assert not any(isinstance(op, TimedOperator) for op in untimed)
    assert isinstance(Throttle.build(ThrottleSection(interval=1)), ThrottleFirst)
    assert isinstance(Throttle.build(ThrottleSection(interval=1, keep="last")), ThrottleLast)
    assert isinstance(Dedup.build(DedupSection(within=1)), TimedOperator)


# --- deadband -----------------------------------------------------------------------


def test_deadband_first_event_passes_as_the_same_object() -> None:
    op = Deadband(DeadbandSection(abs=0.5))
    first = reading(20.0)
    out = op.apply(first)
    assert len(out) == 1 and out[0] is first


def test_deadband_abs_passes_only_more_than_the_band() -> None:
    op = Deadband(DeadbandSection(abs=0.5))
    events = [reading(v, t) for t, v in enumerate([20.0, 20.5, 19.5, 20.25, 20.625, 20.0])]
    # 20.5 and 19.5 are exactly on the band: dropped. 20.625 is beyond it.
    assert [e.value for e in passed(op, *events)] == [20.0, 20.625, 20.0]
    assert op.dropped == 3


def test_deadband_compares_with_the_last_passed_value_so_drift_gets_through() -> None:
    op = Deadband(DeadbandSection(abs=1))
    values = [10.0, 10.5, 10.875, 11.25]  # each step < 1, the sum > 1
    assert [e.value for e in passed(op, *map(reading, values))] == [10.0, 11.25]


def test_deadband_percent_of_the_last_passed_magnitude() -> None:
    op = Deadband(DeadbandSection(percent=2))
    values = [100, 102, 98, 102.5, 100.5, -50, -51.05, -51.25]
    # band 2 around 100: 102 and 98 dropped; 102.5 passes; band 2.05 around 102.5: 100.5
    # dropped; -50 passes; band 1 around -50: -51.05 passes (> 1), -51.25 is within 1.021.
    assert [e.value for e in passed(op, *map(reading, values))] == [100, 102.5, -50, -51.05]


def test_deadband_percent_around_zero_passes_any_change_but_not_a_repeat() -> None:
    op = Deadband(DeadbandSection(percent=5))
    values = [0, 0, 0.001, 0.00104, 0, -0.0, 1e-9]
    # 0 repeated: dropped. 0.001: passes (band 0). 0.00104 within 5% of 0.001: dropped.
    assert [e.value for e in passed(op, *map(reading, values))] == [0, 0.001, 0, 1e-9]


def test_deadband_state_is_per_key() -> None:
    op = Deadband(DeadbandSection(abs=1))
    a1, a2 = reading(10, source="a"), reading(10.5, source="a")
    b1, b2 = reading(10.5, source="b"), reading(12, source="b")
    assert passed(op, a1, b1, a2, b2) == [a1, b1, b2]
    shared = Deadband(DeadbandSection.model_validate({"abs": 1, "by": ["name"]}))
    assert passed(shared, a1, b1, a2, b2) == [a1, b2]


@pytest.mark.parametrize("value", ["n/a", True, {"x": 1}, math.nan, math.inf])
def test_deadband_non_numeric_passes_counted_and_keeps_the_reference(value: Value) -> None:
    op = Deadband(DeadbandSection(abs=1))
    first, odd, near, far = reading(10.0), reading(value), reading(10.5), reading(11.5)
    # 10.5 is within the band of 10.0: the odd value did not become the reference.
    assert passed(op, first, odd, near, far) == [first, odd, far]
    assert (op.non_numeric, op.dropped) == (1, 1)


@pytest.mark.parametrize(
    "raw", [{}, {"abs": 1, "percent": 1}, {"abs": -1}, {"percent": 2, "by": []}, {"abs": 1, "x": 1}]
)
def test_deadband_config_errors(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DeadbandSection.model_validate(raw)


@given(st.lists(st.integers(min_value=-1000, max_value=1000), max_size=60))
def test_deadband_property_passed_values_are_more_than_a_band_apart(values: list[int]) -> None:
    op = Deadband(DeadbandSection(abs=3))
    reference: float | None = None
    for v in values:
        out = op.apply(reading(v))
        if reference is None or abs(v - reference) > 3:
            assert len(out) == 1
            reference = v
        else:
            assert out == ()


# --- on_change ----------------------------------------------------------------------


def test_on_change_passes_first_and_changed_values_only() -> None:
    op = OnChange(OnChangeSection())
    events = [reading(v) for v in ["open", "open", "closed", "closed", "open"]]
    assert passed(op, *events) == [events[0], events[2], events[4]]
    assert op.dropped == 2


@pytest.mark.parametrize(
    ("before", "after", "same"),
    [
        (1, 1.0, True),
        (0.0, -0.0, True),
        (float("nan"), float("nan"), True),  # two NaN objects, not one compared to itself
        (True, 1, False),
        (False, 0.0, False),
        ("1", 1, False),
        ({"a": 1, "b": "x"}, {"b": "x", "a": 1.0}, True),
        ({"a": 1}, {"a": True}, False),
    ],
)
def test_on_change_value_identity(before: Value, after: Value, same: bool) -> None:
    op = OnChange(OnChangeSection())
    out = passed(op, reading(before), reading(after))
    assert len(out) == (1 if same else 2)


def test_on_change_state_is_per_key() -> None:
    op = OnChange(OnChangeSection.model_validate({"by": ["source", "name", "tags.zone"]}))
    a = new_event("s", "mode", "auto", tags={"zone": "a"})
    b = new_event("s", "mode", "auto", tags={"zone": "b"})
    a_again = new_event("s", "mode", "auto", tags={"zone": "a"})
    assert passed(op, a, b, a_again) == [a, b]


def test_on_change_config_has_no_options() -> None:
    assert OnChangeSection.model_validate({}).by == ["source", "name"]
    with pytest.raises(ValidationError):
        OnChangeSection.model_validate({"ignore": True})


# --- throttle -----------------------------------------------------------------------


def test_throttle_first_passes_one_per_interval_following_the_data() -> None:
    op = Throttle.build(ThrottleSection(interval=10))
    times = [0, 5, 9.999, 10, 19.5, 35, 44, 45]
    events = [reading(1, t) for t in times]
    # An interval ends exactly at start + interval; the next opens at the next event.
    assert [e.time for e in passed(op, *events)] == [0, 10, 35, 45]
    assert op.dropped == 4
    assert not isinstance(op, TimedOperator)  # nothing held, nothing to wait for


def test_throttle_first_is_per_key_and_survives_a_clock_step_back() -> None:
    op = Throttle.build(ThrottleSection(interval=60))
    a0, b1, a2 = reading(1, 100, source="a"), reading(1, 101, source="b"), reading(1, 102, "a")
    back = reading(1, 40, source="a")
    assert passed(op, a0, b1, a2, back) == [a0, b1, back]


def test_throttle_last_emits_the_latest_of_the_interval_on_tick() -> None:
    op = ThrottleLast(ThrottleSection.model_validate({"interval": "10s", "keep": "last"}))
    events = [reading(v, t) for v, t in [(1, 0), (2, 3), (3, 7)]]
    assert passed(op, *events) == []
    assert op.tick(9.99) == ()
    out = op.tick(10)
    assert len(out) == 1 and out[0] is events[-1]
    assert op.tick(20) == ()
    assert op.dropped == 2


def test_throttle_last_event_after_the_interval_releases_the_held_one() -> None:
    op = ThrottleLast(ThrottleSection(interval=10, keep="last"))
    first, late = reading(1, 0), reading(2, 12)
    assert passed(op, first, late) == [first]
    assert op.tick(21.9) == ()
    assert list(op.tick(22)) == [late]


def test_throttle_last_ticks_emit_in_interval_end_order_and_flush_empties() -> None:
    op = ThrottleLast(ThrottleSection(interval=10, keep="last"))
    b, a, c = reading(1, 0, source="b"), reading(1, 2, source="a"), reading(1, 5, source="c")
    passed(op, b, a, c)
    assert list(op.tick(12)) == [b, a]
    assert list(op.flush()) == [c]
    assert op.flush() == () and op.tick(100) == ()


def test_throttle_last_tick_order_follows_reopened_intervals() -> None:
    op = ThrottleLast(ThrottleSection(interval=10, keep="last"))
    a0, b5, a12 = reading(1, 0, source="a"), reading(1, 5, source="b"), reading(1, 12, "a")
    assert passed(op, a0, b5, a12) == [a0]
    assert list(op.tick(30)) == [b5, a12]  # b's interval ends at 15, a's second at 22


def test_throttle_last_clock_step_back_releases_the_held_event() -> None:
    op = ThrottleLast(ThrottleSection(interval=10, keep="last"))
    held, back = reading(1, 100), reading(2, 50)
    assert passed(op, held, back) == [held]
    assert list(op.tick(60)) == [back]


def test_throttle_config_errors() -> None:
    for raw in [{}, {"interval": 0}, {"interval": "ten"}, {"interval": 1, "keep": "middle"}]:
        with pytest.raises(ValidationError):
            ThrottleSection.model_validate(raw)


# --- range --------------------------------------------------------------------------


def test_range_passes_inside_including_the_bounds() -> None:
    op = RangeCheck(RangeSection(min=-40, max=85))
    events = [reading(v) for v in [-40, 0, 21.5, 85]]
    out = passed(op, *events)
    assert out == events and all(a is b for a, b in zip(out, events, strict=True))
    assert op.take_dead_letters() == []


def test_range_dead_letters_outside_values_with_a_reason() -> None:
    op = RangeCheck(RangeSection.model_validate({"min": -40, "max": 85}))
    high, low, nan, inf = reading(85.5), reading(-41), reading(math.nan), reading(math.inf)
    assert passed(op, high, low, nan, inf) == []
    assert op.take_dead_letters() == [
        (high, "value 85.5 is above the maximum 85"),
        (low, "value -41 is below the minimum -40"),
        (nan, "value is NaN (not a number)"),
        (inf, "value inf is above the maximum 85"),
    ]
    assert op.take_dead_letters() == []  # drained
    assert (op.dead_lettered, op.dropped) == (4, 0)


def test_range_drop_action_counts_without_dead_letters() -> None:
    op = RangeCheck(RangeSection(min=0, action="drop"))
    keep, lose = reading(0), reading(-0.5)
    assert passed(op, keep, lose, reading(-1e9)) == [keep]
    assert op.take_dead_letters() == []
    assert (op.dropped, op.dead_lettered) == (2, 0)


def test_range_one_sided() -> None:
    op = RangeCheck(RangeSection(max=10))
    assert len(passed(op, reading(-1e300), reading(10), reading(10.5))) == 2


@pytest.mark.parametrize("value", ["hot", True, {"v": 500}])
def test_range_non_numeric_passes_and_is_counted(value: Value) -> None:
    op = RangeCheck(RangeSection(min=0, max=1))
    event = reading(value)
    assert passed(op, event) == [event]
    assert (op.non_numeric, op.dead_lettered) == (1, 0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "give `min`, `max` or both"),
        ({"min": 5, "max": 1}, "`min` (5) is greater than `max` (1)"),
        ({"min": 0, "action": "quarantine"}, "dead_letter"),
    ],
)
def test_range_config_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        RangeSection.model_validate(raw)
