"""The rule engine: the fixed step order, chaining, cycles, set, time, dead letters."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import tidegate.rules.config
from tests.rules.rule_support import (
    DEFAULTS,
    T0,
    configs,
    docstring_rules,
    make_stage,
    reading,
    topics,
)
from tidegate.event import Value
from tidegate.outgoing import Outgoing
from tidegate.priority import HIGH, LOW, NORMAL
from tidegate.rules.stage import MAX_PENDING_DEAD_LETTERS, RuleSetError, RuleStage

# -- the documented example -------------------------------------------------------------


def test_the_documented_example_flows_as_described() -> None:
    stage = RuleStage(configs(*docstring_rules(tidegate.rules.config)), DEFAULTS)
    out: list[Outgoing] = []
    for t in range(0, 420, 10):  # 35 °C (95 °F) for seven minutes
        out += stage.tick(T0 + t)
        out += stage.process([reading(35.0, t, source="greenhouse1")])
    out += stage.process([reading(1.0, 420, name="debug_x")])
    by_topic: dict[str, list[Value]] = {}
    for o in out:
        by_topic.setdefault(o.topic, []).append(o.event.value)
    assert by_topic["site/gw/greenhouse1/temperature"] == [95.0] * 42
    assert by_topic["site/gw/greenhouse1/temperature/1m"] == [95.0] * 6
    # Above 86 °F from the first minute's average (t=60) for five minutes.
    assert by_topic["site/gw/alarms/greenhouse1"] == ["raised"]
    assert len(by_topic) == 3  # nothing took the default route; debug was dropped
    assert stage.stats["no-debug"].dropped == 1


# -- the order of the steps inside one rule ---------------------------------------------


def test_set_runs_before_range_and_range_before_deadband() -> None:
    stage = make_stage(
        {
            "name": "f",
            "set": {"value": "value * 10"},
            "range": {"max": 500},
            "deadband": {"abs": 50},
            "publish": {},
        }
    )
    out = stage.process([reading(40.0), reading(60.0, 1), reading(44.0, 2), reading(46.0, 3)])
    # 600 is out of range after set; 440 is within the band of 400; 460 is not.
    assert [o.event.value for o in out] == [400.0, 460.0]
    (letter,) = stage.take_dead_letters()
    assert (letter.rule, letter.event.value) == ("f", 600.0)  # as the range step saw it
    assert letter.reason == "value 600 is above the maximum 500"


def test_an_alarm_after_a_window_watches_the_aggregates() -> None:
    stage = make_stage(
        {
            "name": "avg-hot",
            "window": {"kind": "count", "count": 3, "aggregate": "avg"},
            "alarm": {"above": 30},
            "publish": {"topic": "x/{name}"},
        }
    )
    # One reading above 30 would raise an alarm on readings; their average (25) does not.
    out = stage.process([reading(v, i) for i, v in enumerate([10.0, 25.0, 40.0, 35.0, 35.0, 35.0])])
    assert topics(out) == [
        ("x/temperature", 25.0),
        ("x/temperature", 35.0),
        ("x/temperature_alarm", "raised"),
    ]


def test_absence_sees_the_stream_before_the_filters() -> None:
    stage = make_stage(
        {"name": "quiet", "absence": {"after": 10}, "deadband": {"abs": 1}, "publish": {}}
    )
    # The value never changes, so deadband passes only the first; the stream is alive.
    out = stage.process([reading(5.0, t) for t in range(0, 60, 5)])
    out += stage.tick(T0 + 62)
    assert [o.event.name for o in out] == ["temperature"]
    out = stage.tick(T0 + 80)
    assert [(o.event.name, o.event.value) for o in out] == [("temperature_absence", "stale")]


def test_detector_events_skip_the_later_steps_of_their_rule() -> None:
    # Without that, the window would swallow the (non-numeric) absence report.
    stage = make_stage(
        {
            "name": "gh",
            "absence": {"after": 10},
            "window": {"kind": "tumbling", "size": 60, "aggregate": "count"},
            "publish": {},
        }
    )
    stage.tick(T0)
    stage.process([reading(1.0, 1)])
    out = stage.tick(T0 + 30)
    assert [(o.event.name, o.event.value) for o in out] == [("temperature_absence", "stale")]


def test_events_released_on_tick_go_through_the_later_steps() -> None:
    stage = make_stage(
        {
            "name": "t",
            "throttle": {"interval": 10, "keep": "last"},
            "window": {"kind": "count", "count": 2, "aggregate": "max"},
            "publish": {},
        }
    )
    assert stage.process([reading(1.0, 0), reading(2.0, 1)]) == []
    assert stage.tick(T0 + 10) == []  # the throttle released 2.0: the window holds it
    stage.process([reading(7.0, 12)])
    assert topics(stage.tick(T0 + 22)) == [("tg/gw/gh/temperature", 7.0)]


# -- chaining --------------------------------------------------------------------------


def test_a_rule_without_outcome_passes_its_output_on() -> None:
    stage = make_stage(
        {"name": "f", "match": {"name": "temperature"}, "set": {"value": "value * 1.8 + 32"}},
        {"name": "pub", "match": {"name": "temperature"}, "publish": {"topic": "f/{source}"}},
    )
    assert topics(stage.process([reading(100.0)])) == [("f/gh", 212.0)]
    stats = stage.stats
    assert (stats["f"].matched, stats["f"].passed, stats["pub"].published) == (1, 1, 1)


def test_publish_stops_unless_continue_and_a_published_event_skips_the_default_route() -> None:
    stage = make_stage(
        {"name": "live", "publish": {"topic": "live/{name}", "continue": True}},
        {"name": "hot", "where": "value > 30", "publish": {"topic": "hot/{name}"}},
        {"name": "stop", "publish": {"topic": "never"}},
    )
    out = stage.process([reading(35.0), reading(20.0, 1)])
    # 35: live, then hot (stops). 20: live, then stop. Nothing takes the default route.
    assert topics(out) == [
        ("live/temperature", 35.0),
        ("hot/temperature", 35.0),
        ("live/temperature", 20.0),
        ("never", 20.0),
    ]
    assert stage.stats["(default)"].published == 0

    only_live = make_stage({"name": "live", "publish": {"topic": "live", "continue": True}})
    assert topics(only_live.process([reading(1.0)])) == [("live", 1.0)]

    # After a pass-on rule adds an alarm, the published reading still skips the default
    # route; the new alarm event takes it.
    with_alarm = make_stage(
        {"name": "live", "publish": {"topic": "live", "continue": True}},
        {"name": "hot", "alarm": {"above": 30}},
    )
    assert topics(with_alarm.process([reading(31.0)])) == [
        ("live", 31.0),
        ("tg/gw/gh/temperature_alarm", "raised"),
    ]


def test_created_events_enter_only_the_rules_after_their_maker() -> None:
    stage = make_stage(
        {"name": "early", "match": {"name": "*_alarm"}, "publish": {"topic": "early"}},
        {"name": "hot", "match": {"name": "temperature"}, "alarm": {"above": 30}},
        {"name": "late", "match": {"name": "*_alarm"}, "publish": {"topic": "alarms"}},
    )
    out = stage.process([reading(31.0)])
    assert topics(out) == [("tg/gw/gh/temperature", 31.0), ("alarms", "raised")]
    assert stage.stats["early"].matched == 0
    assert stage.stats["hot"].created == 1


def test_from_takes_only_the_output_of_the_named_rule() -> None:
    stage = make_stage(
        {"name": "agg", "match": {"name": "t*"}, "window": {"kind": "count", "count": 2}},
        {"name": "other", "match": {"name": "h*"}, "where": "value > 0"},
        {"name": "of-agg", "from": "agg", "publish": {"topic": "agg/{name}"}},
    )
    out = stage.process([reading(1.0, 0), reading(3.0, 1), reading(50.0, 2, name="humidity")])
    assert topics(out) == [("agg/temperature", 2.0), ("tg/gw/gh/humidity", 50.0)]


def test_where_false_skips_the_rule_and_where_errors_dead_letter_the_event() -> None:
    stage = make_stage(
        {"name": "humid", "where": "value.rh > 80", "publish": {"topic": "humid"}},
    )
    ok = reading({"rh": 90.0}, name="air")
    dry = reading({"rh": 20.0}, name="air")
    broken = reading(5.0, name="air")  # value.rh of a number: a runtime error
    out = stage.process([ok, dry, broken, ok])
    assert topics(out) == [
        ("humid", {"rh": 90.0}),
        ("tg/gw/gh/air", {"rh": 20.0}),
        ("humid", {"rh": 90.0}),
    ]
    (letter,) = stage.take_dead_letters()
    assert letter.event is broken and letter.rule == "humid"
    assert letter.reason.startswith("where: value.rh")
    assert (stage.stats["humid"].errors, stage.stats["humid"].dead_lettered) == (1, 1)


def test_simple_rule_sets_behave_as_first_match_decides() -> None:
    names = st.sampled_from(["a", "b", "c*", "*"])
    rule_list = st.lists(st.tuples(names, st.booleans()), min_size=0, max_size=6)

    @settings(max_examples=200, derandomize=True, deadline=None)
    @given(rule_list, st.lists(st.sampled_from(["a", "b", "cx", "d"]), max_size=8))
    def check(spec: list[tuple[str, bool]], event_names: list[str]) -> None:
        docs: list[dict[str, Any]] = [
            {"name": f"r{i}", "match": {"name": glob}}
            | ({"drop": True} if drop else {"publish": {"topic": f"t{i}"}})
            for i, (glob, drop) in enumerate(spec)
        ]
        stage = make_stage(*docs)
        out = stage.process([reading(1.0, name=n) for n in event_names])
        expected = []
        for n in event_names:
            for i, (glob, drop) in enumerate(spec):
                if glob in ("*", n) or (glob == "c*" and n.startswith("c")):
                    if not drop:
                        expected.append(f"t{i}")
                    break
            else:
                expected.append(f"tg/gw/gh/{n}")
        assert [o.topic for o in out] == expected

    check()


# -- cycles ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [("b", "later rule"), ("a", "its own output"), ("zz", "no rule is named 'zz'")],
)
def test_from_that_could_cycle_is_refused(source: str, message: str) -> None:
    with pytest.raises(RuleSetError, match=message):
        make_stage({"name": "a", "from": [source], "publish": {}}, {"name": "b", "drop": True})


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(RuleSetError, match="duplicate rule name 'a'"):
        make_stage({"name": "a", "drop": True}, {"name": "a", "publish": {}})


# -- set -------------------------------------------------------------------------------


def test_set_computes_fields_from_the_incoming_event() -> None:
    stage = make_stage(
        {
            "name": "cal",
            "set": {
                "value": "value * 1.8 + 32",
                "unit": "'°F'",
                "name": "name + '_f'",
                "tags.raw": "value",
                "tags.room": None,
                "tags.floor": 2,
            },
            "publish": {"topic": "{name}/{unit}"},
        }
    )
    event = reading(100.0, unit="°C", tags={"room": "north"})
    (out,) = stage.process([event])
    assert out.topic == "temperature_f/°F"
    assert (out.event.value, out.event.unit) == (212.0, "°F")
    assert out.event.tags == {"raw": "100.0", "floor": "2"}
    assert (out.event.id, out.event.time) == (event.id, event.time)  # the same reading


def test_set_value_entries_and_kind_errors() -> None:
    stage = make_stage({"name": "s", "set": {"value.rh": "value.rh / 100"}, "publish": {}})
    (out,) = stage.process([reading({"rh": 50.0, "t": 20.0}, name="air")])
    assert out.event.value == {"rh": 0.5, "t": 20.0}
    assert stage.process([reading(5.0, name="air")]) == []
    (letter,) = stage.take_dead_letters()
    assert "not a mapping" in letter.reason

    stage = make_stage({"name": "n", "set": {"name": "value"}, "publish": {}})
    assert stage.process([reading(5.0)]) == []
    assert "set.name: needs non-empty text, got float" in stage.take_dead_letters()[0].reason


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"unit": "degF"}, "quote it: \"'degF'\""),
        ({"unit": 5}, "set.unit: needs text or null, got int"),
        ({"valeu": "1"}, "did you mean 'value'"),
        ({"time": "'soon'"}, "set.time: needs a finite number"),
    ],
)
def test_bad_set_is_refused_at_load(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        configs({"name": "s", "set": spec, "publish": {}})


def test_a_rule_that_does_nothing_is_refused() -> None:
    with pytest.raises(ValidationError, match="a rule needs `publish"):
        configs({"name": "nothing", "match": {"name": "x"}})


# -- time, flush -------------------------------------------------------------------------


def test_tick_closes_processing_time_windows_without_events() -> None:
    stage = make_stage(
        {"name": "w", "window": {"kind": "tumbling", "size": 60, "aggregate": "count"}}
    )
    stage.tick(T0)
    assert stage.process([reading(1.0, 1), reading(2.0, 2)]) == []
    assert stage.tick(T0 + 59) == []
    assert topics(stage.tick(T0 + 60)) == [("tg/gw/gh/temperature", 2)]


def test_event_time_rules_follow_their_events_not_the_clock() -> None:
    stage = make_stage(
        {
            "name": "w",
            "time": "event",
            "window": {"kind": "tumbling", "size": 60, "aggregate": "count", "time": "event"},
        }
    )
    assert stage.process([reading(1.0, 1), reading(2.0, 2)]) == []
    assert stage.tick(T0 + 3600) == []  # the gateway clock does not reach this rule
    out = stage.process([reading(3.0, 61)])  # the event time closes the first window
    assert topics(out) == [("tg/gw/gh/temperature", 2)]


def test_flush_emits_held_events_through_the_later_rules() -> None:
    stage = make_stage(
        {"name": "w", "window": {"kind": "tumbling", "size": 60, "aggregate": "max"}},
        {"name": "pub", "publish": {"topic": "minute"}},
    )
    stage.tick(T0)
    stage.process([reading(1.0, 1), reading(4.0, 2)])
    (out,) = stage.flush()
    assert (out.topic, out.event.value) == ("minute", 4.0)
    assert out.event.tags is not None and out.event.tags["partial"] == "true"


# -- counters, dead letters, priority ------------------------------------------------------


def test_counters_per_rule_and_operator() -> None:
    stage = make_stage(
        {"name": "db", "deadband": {"abs": 1}, "publish": {}},
    )
    stage.process([reading(1.0), reading(1.5, 1), reading(3.0, 2)])
    counters = stage.counters()["rules"]
    assert isinstance(counters, dict)
    assert counters["db"]["in"] == 3 and counters["db"]["out"] == 2
    assert counters["db"]["filtered"] == 1
    assert counters["db"]["operators"]["deadband"]["dropped"] == 1


def test_pending_dead_letters_are_bounded_and_the_excess_counted() -> None:
    stage = make_stage({"name": "r", "range": {"max": 0}})
    stage.process([reading(1.0, i) for i in range(MAX_PENDING_DEAD_LETTERS + 5)])
    assert len(stage.take_dead_letters()) == MAX_PENDING_DEAD_LETTERS
    assert stage.dead_letters_discarded == 5
    assert stage.take_dead_letters() == []


def test_priority_is_carried_on_outgoing() -> None:
    stage = make_stage(
        {"name": "h", "match": {"name": "a"}, "publish": {"priority": "high"}},
        {"name": "l", "match": {"name": "b"}, "publish": {"priority": "low"}},
    )
    out = stage.process([reading(1, name="a"), reading(1, name="b"), reading(1, name="c")])
    assert [o.priority for o in out] == [HIGH, LOW, NORMAL]
