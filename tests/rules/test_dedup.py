"""Dedup: the documented definition, for late and out-of-order events too.

`passed <= time < passed + within` for some earlier pass of the same key and
value, for every event up to `allowed_lateness` behind its clock, whatever
unrelated events moved. The clock: in a `time: processing` rule the ticks (the
gateway clock), never an event's stamp; in a `time: event` rule the newest time
of the event's own stream. ``test_dedup_reference`` checks the same against a
model that keeps every pass forever.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tidegate.event import Event, Value, new_event
from tidegate.rules.clock import CLOCK_STEP_BACK
from tidegate.rules.config import RuleConfig
from tidegate.rules.operator import RuleTime, TimedOperator
from tidegate.rules.operators.dedup import ClockDedup, Dedup, DedupSection
from tidegate.rules.replay import replay
from tidegate.rules.stage import RouteDefaults, RuleStage


def reading(value: Value, t: float, source: str = "s1", name: str = "temp") -> Event:
    return new_event(source, name, value, time=t)


def make(**raw: Any) -> ClockDedup:
    """The operator of a `time: processing` rule: the ticks are its clock."""
    return ClockDedup(DedupSection.model_validate(raw))


def make_for(time: RuleTime, **raw: Any) -> Dedup:
    """The operator the compiler builds for a rule with this `time`."""
    return Dedup.build(DedupSection.model_validate(raw), time)


def tick(op: Dedup, now: float) -> None:
    """What the rule does on a tick: only a time-driven operator is ticked."""
    if isinstance(op, TimedOperator):
        op.tick(now)


def passed(op: Dedup, *events: Event) -> list[Event]:
    return [out for e in events for out in op.apply(e)]


# -- the window after a pass -----------------------------------------------------------


def test_drops_repeats_within_the_window_after_a_pass() -> None:
    op = make(within="60s")
    events = [reading(1, t) for t in [0, 30, 59.9, 60, 61, 119.9, 120]]
    # The window is [passed, passed + within); dropped events do not extend it.
    assert [e.time for e in passed(op, *events)] == [0, 60, 120]
    assert op.dropped == 4


def test_key_and_value_both_count() -> None:
    op = make(within=60)
    events = [
        reading(1, 0, source="a"),
        reading(2, 1, source="a"),
        reading(1, 2, source="b"),
        reading(1.0, 3, source="a"),  # same value as 1
        reading(True, 4, source="a"),  # not the same value as 1
        reading({"k": "v"}, 5, source="a"),
        reading({"k": "v"}, 6, source="a"),
    ]
    assert passed(op, *events) == [events[i] for i in (0, 1, 2, 4, 5)]


# -- late and out-of-order events ------------------------------------------------------


@pytest.mark.parametrize("mover", ["event", "tick"])
def test_a_late_duplicate_is_dropped_whatever_moved_the_clock(mover: str) -> None:
    """The issue's case: the clock passed the first window's end (160) before the late
    repeat (120) arrived; it is still inside that window."""
    op = make(within=60)
    first = reading(1, 100)
    assert passed(op, first) == [first]
    if mover == "event":
        passed(op, reading(9, 170, source="other"))
    else:
        op.tick(170)
    assert passed(op, reading(1, 120)) == []
    assert (op.dropped, op.too_late) == (1, 0)


def test_an_event_older_than_a_pass_opens_a_window_of_its_own() -> None:
    op = make(within=60)
    first, older, oldest = reading(1, 100), reading(1, 50), reading(1, 45)
    assert passed(op, first, older) == [first, older]  # 50 is in no window: it passes
    assert passed(op, reading(1, 105), reading(1, 55), reading(1, 109.9)) == []  # in both
    assert passed(op, oldest) == [oldest]  # before every pass
    assert op.entries == 3  # three windows of one value


def test_an_event_later_than_the_allowed_lateness_passes_unchecked_and_is_counted() -> None:
    op = make(within=60)  # allowed_lateness defaults to within
    passed(op, reading(1, 100))
    op.tick(300)
    too_late = reading(1, 120)  # 180 s behind the clock: more than 60
    assert passed(op, too_late) == [too_late]
    assert (op.dropped, op.too_late) == (0, 1)


def test_allowed_lateness_sets_how_late_an_event_is_still_compared() -> None:
    op = make(within=60, allowed_lateness="3m")
    passed(op, reading(1, 100))
    op.tick(300)
    assert passed(op, reading(1, 120)) == []  # 180 s late: within 3 min
    assert passed(op, reading(1, 119.5, source="x")) != []  # another key
    strict = make(within=60, allowed_lateness=0)
    passed(strict, reading(1, 100))
    strict.tick(101)
    assert passed(strict, reading(1, 100.5)) != [] and strict.too_late == 1


def test_a_pass_is_kept_until_the_clock_is_past_within_plus_lateness() -> None:
    op = make(within=10, allowed_lateness=5)
    for t in range(1000):
        op.tick(t)
        op.apply(reading(t, t))  # all values distinct
        assert op.entries <= 16
    op.tick(1014)  # 999 + 15: the pass at 999 may still be needed; 998 not
    assert op.entries == 1
    op.tick(1014.5)
    assert op.entries == 0


# -- the clock: ticks (processing), or each stream's own time (event) -------------------


def test_an_event_stamped_in_the_future_leaves_the_processing_clock_alone() -> None:
    """The review's case: a device with a wrong RTC stamps one event a day ahead. Before,
    it moved the clock there: every later event was too late and passed unchecked."""
    op = make(within=60)
    t0 = 1_700_000_000.0
    op.tick(t0)
    assert len(passed(op, reading(1, t0), reading(1, t0 + 1))) == 1
    ahead = reading(1, t0 + 86_400, source="b")
    assert passed(op, ahead) == [ahead]  # compared and remembered like any other
    for i in range(2, 12):
        op.tick(t0 + i)
        assert passed(op, reading(1, t0 + i)) == []  # exact repeats, inside the window
    assert (op.dropped, op.too_late) == (11, 0)
    # b's own pass keeps its window: a repeat stamped inside it is dropped too.
    assert passed(op, reading(1, t0 + 86_401, source="b")) == []


def test_in_a_processing_rule_the_gateway_clock_judges_lateness_not_the_stamps() -> None:
    """Through the live stage, as gateway/pipeline.py drives it."""
    defaults = RouteDefaults(gateway="g", prefix="p", topic="{source}/{name}", qos=1)
    rule = RuleConfig.model_validate({"name": "once", "dedup": {"within": "60s"}})
    stage = RuleStage([rule], defaults)
    t0 = 1_700_000_000.0
    out = []
    for i in range(12):
        out += stage.tick(t0 + i)
        out += stage.process([reading(7, t0 + i)])
        if i == 1:
            out += stage.process([reading(7, t0 + 86_400, source="rtc-wrong")])
    assert [(o.event.source, o.event.time - t0) for o in out] == [("s1", 0), ("rtc-wrong", 86_400)]
    counters = stage.counters()["rules"]["once"]["operators"]["dedup"]  # type: ignore[index]
    assert (counters["dropped"], counters["too_late"]) == (11, 0)


def test_in_an_event_time_rule_each_stream_has_its_own_clock() -> None:
    """One stream's far-future stamp makes only that stream's events late: the others'
    repeats are still dropped (with one clock for all, none would be, for a day)."""
    defaults = RouteDefaults(gateway="g", prefix="p", topic="{source}/{name}", qos=1)
    rule = RuleConfig.model_validate({"name": "once", "time": "event", "dedup": {"within": "60s"}})
    stage = RuleStage([rule], defaults, trace=True)
    t0 = 1_700_000_000.0
    events = [reading(7, t0), reading(7, t0 + 86_400, source="b")]
    events += [reading(7, t0 + i) for i in range(1, 10)]
    events += [reading(7, t0 + 1, source="b"), reading(7, t0 + 2, source="b")]
    out = [o.event for step in replay(stage, events) for o, _ in step.routed]
    # b's own later events are a day behind its clock: past allowed_lateness, they pass
    # unchecked and are counted (the event-time rule, kept to the one stream).
    assert [(e.source, e.time - t0) for e in out] == [
        ("s1", 0),
        ("b", 86_400),
        ("b", 1),
        ("b", 2),
    ]
    counters = stage.counters()["rules"]["once"]["operators"]["dedup"]  # type: ignore[index]
    assert (counters["dropped"], counters["too_late"]) == (9, 2)


def test_event_time_judges_a_lagging_stream_by_its_own_time() -> None:
    op = make_for("event", within=60)
    passed(op, reading(1, 10_000, source="fast"))
    lagging = [reading(1, t, source="slow") for t in (6_000, 6_010, 6_030, 6_061)]
    assert passed(op, *lagging) == [lagging[0], lagging[3]]
    tick(op, 10_000)  # the rule's watermark: not this operator's clock
    assert not isinstance(op, TimedOperator)
    assert passed(op, reading(1, 6_062, source="slow")) == []
    assert op.too_late == 0


def test_event_time_keeps_passes_by_their_own_streams_clock() -> None:
    op = make_for("event", within=10, allowed_lateness=5)
    passed(op, reading(1, 0, source="a"), reading(2, 3, source="a"))
    passed(op, reading(1, 1_000, source="b"))  # b's clock forgets nothing of a's
    assert op.entries == 3
    passed(op, reading(3, 18, source="a"))  # a's clock 18: a pass at 3 ends at 3 + 15
    assert op.entries == 3
    passed(op, reading(3, 18.5, source="a"))  # a repeat (dropped); clock past 3 + 15
    assert op.entries == 2
    assert passed(op, reading(2, 13.5, source="a")) != []  # its window was [3, 13)


def test_event_time_evicts_from_the_stream_silent_longest() -> None:
    op = make_for("event", within=60, max_entries=3)
    passed(op, reading("x", 1000, source="gone"), reading("y", 1001, source="gone"))
    passed(op, reading("a", 500, source="live"))
    passed(op, reading("b", 460, source="live"))  # the oldest stamp, but live arrived last
    assert (op.entries, op.evicted) == (3, 1)
    assert passed(op, reading("b", 461, source="live")) == []  # live's passes are kept
    assert passed(op, reading("x", 1005, source="gone")) != []  # gone's oldest was evicted
    assert passed(op, reading("y", 1006, source="gone")) == []


def test_max_entries_evicts_the_oldest_passes_and_counts_them() -> None:
    op = make(within=60, max_entries=3)
    passed(op, reading("a", 0), reading("b", 1), reading("c", 2), reading("d", 3))
    assert (op.entries, op.evicted) == (3, 1)
    again = reading("a", 4)
    assert passed(op, again, reading("d", 5)) == [again]


def test_a_step_back_of_the_gateway_clock_starts_again_from_the_new_time() -> None:
    op = make(within=60)
    op.tick(10_000)
    passed(op, reading(1, 10_000))
    op.tick(10_000 - CLOCK_STEP_BACK / 2)  # jitter, not a step
    assert (op.clock_jumps, op.entries) == (0, 1)
    op.tick(500)  # set back by NTP
    assert (op.clock_jumps, op.entries) == (1, 0)
    # The new time is compared as usual, not "too late" until the clock catches up.
    back = reading(1, 500)
    assert passed(op, back, reading(1, 520)) == [back]
    assert op.too_late == 0


def test_event_times_ahead_of_the_ticks_are_no_clock_step() -> None:
    op = make(within=60)
    op.tick(1000)
    passed(op, reading(1, 1030))  # a device clock 30 s ahead of the gateway's
    op.tick(1000.25)
    assert (op.clock_jumps, op.entries) == (0, 1)
    assert passed(op, reading(1, 1040)) == []


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"within": 0},
        {"within": 60, "allowed_lateness": -1},
        {"within": 60, "allowed_lateness": "soon"},
        {"within": 60, "max_entries": 0},
    ],
)
def test_config_errors(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DedupSection.model_validate(raw)


def test_in_a_rule_late_duplicates_are_dropped_and_counters_shown() -> None:
    defaults = RouteDefaults(gateway="g", prefix="p", topic="{source}/{name}", qos=1)
    rule = RuleConfig.model_validate(
        {"name": "once", "dedup": {"within": "60s", "allowed_lateness": "2m"}}
    )
    stage = RuleStage([rule], defaults, trace=True)
    events = [reading(1, 100), reading(2, 170, source="b"), reading(1, 150), reading(1, 10)]
    out = [o.event for step in replay(stage, events) for o, _ in step.routed]
    assert [(e.source, e.time) for e in out] == [("s1", 100), ("b", 170), ("s1", 10)]
    counters = stage.counters()["rules"]["once"]["operators"]["dedup"]  # type: ignore[index]
    assert counters == {"dropped": 1, "too_late": 1, "evicted": 0, "clock_jumps": 0, "entries": 3}
