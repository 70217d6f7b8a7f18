"""Alarm: threshold, hysteresis and duration on a controlled clock."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.rules.rule_support import docstring_rules
from tidegate.event import Event, Value, new_event
from tidegate.rules.operator import TimedOperator
from tidegate.rules.operators.alarm import Alarm, AlarmSection


def reading(
    value: Value, t: float, source: str = "greenhouse", tags: dict[str, str] | None = None
) -> Event:
    return new_event(source, "temperature", value, time=t, tags=tags)


def make(**raw: Any) -> Alarm:
    return Alarm(AlarmSection.model_validate(raw))


def hot(**overrides: Any) -> Alarm:
    """The issue's example: above 30 for 60 s, clears below 28."""
    return make(**{"above": 30, "for": "60s", "clear_below": 28, **overrides})


def alarms(events: list[Event]) -> list[tuple[str, float]]:
    """(value, time) of the alarm events among the output."""
    return [(str(e.value), e.time) for e in events if e.name.endswith("_alarm")]


def feed(op: Alarm, *steps: tuple[Value, float]) -> list[Event]:
    return [out for value, t in steps for out in op.apply(reading(value, t))]


def test_docstring_examples_load() -> None:
    rules = docstring_rules(sys.modules[Alarm.__module__])
    configs = [AlarmSection.model_validate(rule["alarm"]) for rule in rules if "alarm" in rule]
    assert len(configs) == 2
    assert configs[0].for_ == 60 and configs[0].clear_below == 28
    assert configs[1].below == 3.3 and configs[1].severity == "critical"
    op: TimedOperator = Alarm(configs[0])
    assert op.flush() == ()


def test_raises_after_for_and_not_before_on_tick() -> None:
    op = hot()
    assert alarms(feed(op, (31, 0), (31, 30), (31, 59.9))) == []
    assert op.tick(59.99) == []
    out = op.tick(60)  # exactly `for` after the condition began
    assert alarms(out) == [("raised", 60)]
    assert (op.raised, op.active) == (1, 1)


def test_tick_driven_raise_without_new_events_and_its_event() -> None:
    op = hot()
    first = reading(35, 1000, tags={"house": "north"})
    assert op.apply(first) == [first]
    assert op.tick(1030) == []
    (raised,) = op.tick(1500)
    # Stamped when the duration completed, not when the tick noticed it.
    assert raised.time == 1060
    assert (raised.source, raised.name) == ("greenhouse", "temperature_alarm")
    assert raised.value == "raised"
    assert raised.tags == {
        "house": "north",
        "severity": "warning",
        "condition": "above",
        "threshold": "30",
        "reading": "35",
    }
    assert raised.id != first.id


def test_an_event_after_the_duration_completes_it_with_the_held_reading() -> None:
    op = hot()
    feed(op, (31, 0))
    late = reading(25, 90)
    out = op.apply(late)
    # The held 31 completed the raise at 60; then 25 < 28 clears at once (clear_for 0).
    assert alarms(out) == [("raised", 60), ("cleared", 90)]
    assert out[1] is late


def test_a_dip_to_or_below_the_threshold_resets_the_timer() -> None:
    op = hot()
    feed(op, (31, 0), (30, 40), (31, 50))  # 30 is not above 30
    assert op.tick(100) == [] and op.tick(109.9) == []
    assert alarms(op.tick(110)) == [("raised", 110)]


def test_clears_only_below_clear_below() -> None:
    op = hot(**{"for": 0})
    assert alarms(feed(op, (31, 0))) == [("raised", 0)]
    assert alarms(feed(op, (29, 1), (28, 2), (30.5, 3), (28, 4))) == []  # hysteresis band
    out = feed(op, (27.9, 5))
    assert alarms(out) == [("cleared", 5)]
    assert out[-1].tags is not None and out[-1].tags["threshold"] == "28"
    assert (op.cleared, op.active) == (1, 0)


def test_exactly_one_raise_and_one_clear_per_transition() -> None:
    op = hot()
    out = feed(op, *[(31 + t % 3, float(t)) for t in range(0, 300, 5)])
    out += [e for t in range(300, 400) for e in op.tick(float(t))]
    out += feed(op, *[(20, float(t)) for t in range(400, 500, 5)])
    out += [e for t in range(500, 600) for e in op.tick(float(t))]
    assert alarms(out) == [("raised", 60), ("cleared", 400)]
    assert (op.raised, op.cleared) == (1, 1)


def test_clear_for_needs_the_clear_condition_to_hold() -> None:
    op = hot(clear_for="30s")
    feed(op, (35, 0))
    op.tick(60)
    feed(op, (27, 100), (29, 110), (27, 120))  # 29 resets the clear timer
    assert op.tick(149.9) == []
    assert alarms(op.tick(150)) == [("cleared", 150)]


def test_default_clear_threshold_is_the_threshold() -> None:
    op = make(above=30)
    assert alarms(feed(op, (30, 0), (30.1, 1), (30, 2), (31, 3), (29.9, 4))) == [
        ("raised", 1),
        ("cleared", 4),
    ]


def test_below_alarm_with_clear_above_and_custom_event_name() -> None:
    op = make(below=3.3, clear_above=3.5, severity="critical", event="battery_low")
    out = feed(op, (3.3, 0), (3.2, 1), (3.4, 2), (3.5, 3), (3.6, 4))
    raised, cleared = [e for e in out if e.name == "battery_low"]
    assert (raised.value, raised.time, cleared.value, cleared.time) == ("raised", 1, "cleared", 4)
    assert raised.tags == {
        "severity": "critical",
        "condition": "below",
        "threshold": "3.3",
        "reading": "3.2",
    }
    assert cleared.tags is not None and cleared.tags["threshold"] == "3.5"


def test_every_event_passes_through_and_the_alarm_follows_its_cause() -> None:
    op = make(above=30)
    values: list[Value] = [20, 31, 32, 29, "err"]
    events = [reading(v, t) for t, v in enumerate(values)]
    out = [o for e in events for o in op.apply(e)]
    readings = [o for o in out if o.name == "temperature"]
    assert len(readings) == len(events)
    assert all(a is b for a, b in zip(readings, events, strict=True))
    assert [o.value for o in out] == [20, 31, "raised", 32, 29, "cleared", "err"]


@pytest.mark.parametrize("odd", ["err", True, {"v": 40}, float("nan")])
def test_non_numeric_is_counted_and_does_not_touch_the_alarm(odd: Value) -> None:
    op = hot()
    feed(op, (31, 0), (odd, 30))
    assert op.non_numeric == 1
    assert alarms(op.tick(60)) == [("raised", 60)]  # the timer kept running


def test_state_is_per_key() -> None:
    op = hot(**{"for": 10})
    op.apply(reading(31, 0, source="a"))
    op.apply(reading(20, 0, source="b"))
    op.apply(reading(31, 5, source="b"))
    out = op.tick(10)
    assert [(e.source, e.time) for e in out] == [("a", 10)]
    assert [(e.source, e.time) for e in op.tick(15)] == [("b", 15)]
    assert op.active == 2


def test_clock_step_back_restarts_the_running_duration() -> None:
    op = hot()
    feed(op, (31, 10_000), (31, 100))
    assert op.tick(159) == []
    assert alarms(op.tick(160)) == [("raised", 160)]


def test_flush_does_not_clear() -> None:
    op = hot(**{"for": 0})
    feed(op, (40, 0))
    assert op.flush() == () and op.active == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "exactly one of `above` or `below`"),
        ({"above": 30, "below": 10}, "exactly one of `above` or `below`"),
        ({"above": 30, "clear_below": 31}, "`clear_below` (31) must not be higher than `above`"),
        ({"below": 3, "clear_above": 2}, "`clear_above` (2) must not be lower than `below` (3)"),
        ({"above": 30, "clear_above": 31}, "`clear_above` is for `below` alarms"),
        ({"below": 3, "clear_below": 2}, "`clear_below` is for `above` alarms"),
        ({"above": 30, "for_": 5}, "Extra inputs are not permitted"),
        ({"above": 30, "for": "soon"}, "is not a duration"),
        ({"above": 30, "severity": "fatal"}, "'info', 'warning' or 'critical'"),
        ({"above": 30, "event": "a/b"}, "String should match pattern"),
    ],
)
def test_config_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        AlarmSection.model_validate(raw)


_steps = st.lists(
    st.tuples(st.integers(0, 40), st.sampled_from([20, 27, 28, 29, 30, 31, 35])), max_size=40
)


@given(_steps, st.integers(1, 15))
def test_property_outcome_does_not_depend_on_the_tick_cadence(
    steps: list[tuple[int, int]], cadence: int
) -> None:
    """Alarm events and their times are the same with or without ticks between events,
    and raised/cleared alternate, starting with raised."""
    sparse, dense = hot(clear_for=15), hot(clear_for=15)
    sparse_out: list[Event] = []
    dense_out: list[Event] = []
    t = 0
    for gap, value in steps:
        for tick_at in range(t, t + gap, cadence):
            dense_out += dense.tick(tick_at)
        t += gap
        sparse_out += sparse.apply(reading(value, t))
        dense_out += dense.apply(reading(value, t))
    sparse_out += sparse.tick(t + 1000)
    dense_out += dense.tick(t + 1000)
    assert alarms(sparse_out) == alarms(dense_out)
    values = [v for v, _ in alarms(sparse_out)]
    assert values == ["raised", "cleared"] * (len(values) // 2) + ["raised"] * (len(values) % 2)
