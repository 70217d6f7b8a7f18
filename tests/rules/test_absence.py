"""Absence: stale and recovered events on a controlled clock."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.rules.rule_support import docstring_rules
from tidegate.event import Event, new_event
from tidegate.rules.operator import TimedOperator
from tidegate.rules.operators.absence import Absence, AbsenceSection
from tidegate.timefmt import rfc3339


def reading(
    t: float,
    source: str = "greenhouse",
    name: str = "temperature",
    tags: dict[str, str] | None = None,
) -> Event:
    return new_event(source, name, 21.5, time=t, tags=tags)


def make(**raw: Any) -> Absence:
    return Absence(AbsenceSection.model_validate({"after": "5m", **raw}))


def statuses(events: list[Event]) -> list[tuple[str, str, float]]:
    """(source, value, time) of the stale/recovered events among the output."""
    return [(e.source, str(e.value), e.time) for e in events if e.name.endswith("_absence")]


def test_docstring_examples_load() -> None:
    rules = docstring_rules(sys.modules[Absence.__module__])
    configs = [AbsenceSection.model_validate(r["absence"]) for r in rules if "absence" in r]
    assert [c.after for c in configs] == [300, 120]
    assert configs[1].expect[1] == {"source": "greenhouse", "name": "humidity"}
    op: TimedOperator = Absence(configs[1])
    assert op.flush() == ()


def test_stale_only_after_more_than_after_and_once() -> None:
    op = make()
    first = reading(0)
    assert op.apply(first) == [first]
    assert op.tick(299) == [] and op.tick(300) == []  # a gap of exactly `after` is fine
    (stale,) = op.tick(300.5)
    assert (stale.source, stale.name, stale.value) == ("greenhouse", "temperature_absence", "stale")
    assert stale.time == 300  # when the silence exceeded `after`, not when the tick saw it
    assert stale.tags == {"after": "300", "last_seen": rfc3339(0)}
    assert op.tick(301) == [] and op.tick(10_000) == []
    assert (op.went_stale, op.stale_now) == (1, 1)


def test_recovered_when_data_returns_after_the_event_itself() -> None:
    op = make()
    op.apply(reading(0, tags={"house": "north"}))
    op.tick(400)
    back = reading(1000, tags={"house": "north"})
    out = op.apply(back)
    assert out[0] is back
    assert statuses(out) == [("greenhouse", "recovered", 1000)]
    assert out[1].tags == {"house": "north", "silent_for": "1000"}
    assert (op.recovered, op.stale_now) == (1, 0)
    assert op.apply(reading(1001)) != [] and op.recovered == 1  # once per transition


def test_a_late_event_reports_the_silence_it_ends_without_a_tick() -> None:
    op = make()
    op.apply(reading(0))
    late = reading(400)
    out = op.apply(late)
    assert statuses(out) == [("greenhouse", "stale", 300), ("greenhouse", "recovered", 400)]
    assert out[1] is late


def test_a_regular_stream_is_never_stale() -> None:
    op = make()
    out: list[Event] = []
    for t in range(0, 3000, 300):
        out += op.apply(reading(t))
        out += op.tick(t + 299.9)
    assert statuses(out) == [] and op.went_stale == 0


def test_streams_are_learned_per_key_and_never_seen_ones_are_not_reported() -> None:
    op = make()
    assert op.tick(10_000) == []  # nothing seen, nothing expected
    op.apply(reading(10_000, source="a"))
    op.apply(reading(10_000, source="b"))
    op.apply(reading(10_200, source="b"))
    out = op.tick(10_400)
    assert statuses(out) == [("a", "stale", 10_300)]


def test_tick_reports_several_streams_in_time_order() -> None:
    op = make()
    op.apply(reading(50, source="late"))
    op.apply(reading(0, source="early"))
    assert [e.source for e in op.tick(1000)] == ["early", "late"]


def test_expected_stream_never_seen_is_reported_from_the_first_tick() -> None:
    op = make(
        by=["source", "name", "tags.zone"],
        expect=[{"source": "gh", "name": "humidity", "tags.zone": "east"}],
        event="sensor_presence",
    )
    assert op.tick(1000) == []  # watching starts now
    (stale,) = op.tick(1300.1)
    assert (stale.source, stale.name, stale.value, stale.time) == (
        "gh",
        "sensor_presence",
        "stale",
        1300,
    )
    assert stale.tags == {"zone": "east", "after": "300", "last_seen": "never"}
    arrived = new_event("gh", "humidity", 55, time=1500, tags={"zone": "east"})
    out = op.apply(arrived)
    assert [e.value for e in out] == [55, "recovered"]
    assert out[1].tags == {"zone": "east", "silent_for": "500"}


def test_expected_stream_that_shows_up_in_time_is_not_reported() -> None:
    op = make(expect=[{"source": "gh", "name": "humidity"}])
    op.tick(0)
    op.apply(reading(200, source="gh", name="humidity"))
    assert op.tick(499) == []
    assert statuses(op.tick(501)) == [("gh", "stale", 500)]


def test_a_late_event_from_a_stream_still_reporting_changes_nothing() -> None:
    """The review's case: a reading buffered by the device arrives 100 s late, while the
    stream reports every second. It must not set "last seen" back 100 s (stale at once,
    then recovered by the next reading)."""
    op = make(after="60s")
    out: list[Event] = []
    for t in range(0, 200):
        out += op.tick(t)
        out += op.apply(reading(t))
        if t == 150:
            late = reading(50)
            assert op.apply(late) == [late]
    assert statuses(out) == [] and (op.went_stale, op.recovered) == (0, 0)
    assert statuses(op.tick(260)) == [("greenhouse", "stale", 259)]  # silent after 199


def test_an_out_of_order_event_ends_no_silence_and_starts_none() -> None:
    op = make()
    op.apply(reading(0))
    op.apply(reading(200))
    middle = reading(100)
    assert op.apply(middle) == [middle]  # passes, and nothing else
    assert op.tick(500) == []  # silent since 200, not since 100
    assert statuses(op.tick(500.5)) == [("greenhouse", "stale", 500)]
    older = reading(150)
    assert op.apply(older) == [older]  # stale since 500: an older event is no recovery
    assert (op.stale_now, op.recovered) == (1, 0)


def test_a_step_back_of_the_gateway_clock_seen_by_a_tick_moves_last_seen_back() -> None:
    """NTP sets the clock back from 10,000 to 500: a silence from then on is reported at
    500 + after, not at 10,000 + after (the clock will not be there for hours)."""
    op = make()
    op.tick(10_000)
    op.apply(reading(10_000))
    op.apply(reading(10_000, source="quiet"))
    assert op.tick(10_000 - 0.5) == []  # jitter: no step
    assert op.tick(10_299.5) == []
    assert op.tick(500) == []  # the step: both count as seen at 500
    op.apply(reading(700))  # greenhouse keeps reporting, stamped with the new time
    assert statuses(op.tick(801)) == [("quiet", "stale", 800)]
    assert statuses(op.tick(1001)) == [("greenhouse", "stale", 1000)]
    assert op.went_stale == 2


def test_only_a_tick_steps_back_not_an_event() -> None:
    """An event stamped long before the last one is old data (a late reading), not a
    clock step: "last seen" stays."""
    op = make()
    op.apply(reading(10_000))
    op.apply(reading(500))
    assert op.tick(10_300) == []
    assert statuses(op.tick(10_301)) == [("greenhouse", "stale", 10_300)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "Field required"),
        ({"after": 0}, "greater than 0"),
        ({"after": "5 minutes"}, "is not a duration"),
        (
            {"after": 60, "by": ["name"], "expect": [{"name": "temperature"}]},
            "`expect` needs `by` to include source and name; missing source",
        ),
        (
            {"after": 60, "expect": [{"source": "gh"}]},
            "expect[0] must give exactly the `by` fields (source, name): missing name",
        ),
        (
            {"after": 60, "expect": [{"source": "gh", "name": "t", "room": "x"}]},
            "unknown room",
        ),
    ],
)
def test_config_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        AbsenceSection.model_validate(raw)


@given(
    st.lists(st.tuples(st.integers(0, 900), st.sampled_from(["a", "b"])), max_size=30),
    st.integers(7, 200),
)
def test_property_outcome_does_not_depend_on_the_tick_cadence(
    steps: list[tuple[int, str]], cadence: int
) -> None:
    """Stale/recovered events are the same with or without ticks between events, and
    per stream they alternate stale, recovered, stale, ..."""
    sparse, dense = make(), make()
    sparse_out: list[Event] = []
    dense_out: list[Event] = []
    t = 0
    for gap, source in steps:
        for tick_at in range(t, t + gap, cadence):
            dense_out += dense.tick(tick_at)
        t += gap
        sparse_out += sparse.apply(reading(t, source=source))
        dense_out += dense.apply(reading(t, source=source))
    sparse_out += sparse.tick(t + 1000)
    dense_out += dense.tick(t + 1000)
    assert sorted(statuses(sparse_out)) == sorted(statuses(dense_out))
    for source in ("a", "b"):
        values = [v for s, v, _ in statuses(sparse_out) if s == source]
        assert values == ["stale", "recovered"] * (len(values) // 2) + ["stale"] * (len(values) % 2)
