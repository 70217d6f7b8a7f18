"""The minimal rule stage: match globs, topic templates, default route, drops."""

from __future__ import annotations

import pytest

from tidegate.event import new_event
from tidegate.rules.config import RuleConfig
from tidegate.rules.stage import RouteDefaults, RuleStage
from tidegate.rules.topic import TopicTemplateError, check_template, compile_template

DEFAULTS = RouteDefaults(
    gateway="gw1", prefix="tidegate/gw1", topic="{prefix}/{source}/{name}", qos=1
)


def rule(**kwargs: object) -> RuleConfig:
    return RuleConfig.model_validate(kwargs)


def test_unmatched_events_follow_the_default_route() -> None:
    stage = RuleStage([], DEFAULTS)
    (out,) = stage.process([new_event("gh", "temp", 1)])
    assert (out.topic, out.qos, out.retain) == ("tidegate/gw1/gh/temp", 1, False)
    assert stage.stats["(default)"].published == 1


def test_first_matching_rule_decides() -> None:
    stage = RuleStage(
        [
            rule(name="debug", match={"name": "debug*"}, drop=True),
            rule(
                name="alarms",
                match={"source": ["gh*", "ws"], "name": "*_alarm"},
                publish={"topic": "site/{gateway}/alarms/{source}", "qos": 0, "retain": True},
            ),
            rule(name="all-gh", match={"source": "gh*"}, publish={}),
        ],
        DEFAULTS,
    )
    events = [
        new_event("gh1", "debug_x", 1),
        new_event("gh1", "temp_alarm", "raised"),
        new_event("ws", "temp_alarm", "raised"),
        new_event("gh2", "temp", 3),
        new_event("other", "temp", 4),
    ]
    out = stage.process(events)
    assert [(o.event.source, o.topic, o.qos, o.retain) for o in out] == [
        ("gh1", "site/gw1/alarms/gh1", 0, True),
        ("ws", "site/gw1/alarms/ws", 0, True),
        ("gh2", "tidegate/gw1/gh2/temp", 1, False),
        ("other", "tidegate/gw1/other/temp", 1, False),
    ]
    stats = stage.stats
    assert (stats["debug"].matched, stats["debug"].dropped) == (1, 1)
    assert stats["alarms"].published == 2
    assert stats["all-gh"].published == 1
    assert stats["(default)"].published == 1


def test_tag_conditions() -> None:
    stage = RuleStage(
        [
            rule(
                name="north", match={"tags": {"room": "north*"}}, publish={"topic": "n/{tags.room}"}
            )
        ],
        DEFAULTS,
    )
    out = stage.process(
        [
            new_event("a", "t", 1, tags={"room": "north-1"}),
            new_event("a", "t", 2, tags={"room": "south"}),
            new_event("a", "t", 3),
        ]
    )
    assert [o.topic for o in out] == ["n/north-1", "tidegate/gw1/a/t", "tidegate/gw1/a/t"]


def test_inserted_values_cannot_change_the_topic_shape() -> None:
    render = compile_template("x/{source}/{name}/{unit}", gateway="g")
    assert render(new_event("a/b", "c+#", 1)) == "x/a_b/c__/_"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("", "empty"),
        ("a/{nme}", "did you mean '{name}'"),
        ("a/#", "wildcard"),
        ("a/+/b", "wildcard"),
        ("a/{source", "unbalanced"),
        ("$SYS/x", "reserved"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(
        TopicTemplateError,
        match=message.replace("{", r"\{").replace("}", r"\}").replace("+", r"\+"),
    ):
        check_template(template)
