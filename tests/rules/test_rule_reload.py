"""Loading rule sets from files (positions, folder order) and swapping them in at run time."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tidegate.errors import ConfigError
from tidegate.event import Event, Value, new_event
from tidegate.rules.config import RuleConfig
from tidegate.rules.loader import load_rule_path, load_rules_for_reload
from tidegate.rules.stage import RouteDefaults, RuleSetError, RuleStage

DEFAULTS = RouteDefaults(gateway="gw", prefix="tg/gw", topic="{prefix}/{source}/{name}", qos=1)
T0 = 1_800_000_000.0  # a multiple of 60: windows start here


def configs(*docs: dict[str, Any]) -> list[RuleConfig]:
    return [RuleConfig.model_validate(doc) for doc in docs]


def reading(value: Value, t: float, name: str = "temperature") -> Event:
    return new_event("gh", name, value, time=T0 + t)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def messages(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(exc.value.messages)


MINUTE = {
    "name": "minute",
    "match": {"name": "temperature"},
    "window": {"kind": "tumbling", "size": 60, "aggregate": "count"},
    "publish": {"topic": "minute"},
}
HOT = {"name": "hot", "match": {"name": "temperature"}, "alarm": {"above": 30, "for": 60}}


# -- reload ------------------------------------------------------------------------------


def test_unchanged_rules_keep_their_window_and_alarm_state() -> None:
    stage = RuleStage(configs(HOT, MINUTE), DEFAULTS)
    stage.tick(T0)
    stage.process([reading(31.0, 10), reading(32.0, 20)])
    new = {"name": "new", "match": {"name": "debug*"}, "drop": True}
    result = stage.reload(configs(HOT, MINUTE, new))
    assert (result.kept, result.added, result.changed, result.removed) == (
        ("hot", "minute"),
        ("new",),
        (),
        (),
    )
    assert result.outgoing == []  # nothing was retired, so nothing was flushed
    stage.process([reading(33.0, 30)])
    out = stage.tick(T0 + 70)
    # The alarm's duration started before the reload; the window counts all three.
    assert [(o.event.name, o.event.value) for o in out] == [
        ("temperature_alarm", "raised"),
        ("temperature", 3),
    ]
    assert stage.stats["minute"].matched == 3  # counters carry on too


def test_changed_and_removed_rules_are_flushed_then_replaced() -> None:
    stage = RuleStage(configs(MINUTE, {"name": "gone", "drop": True}), DEFAULTS)
    stage.tick(T0)
    stage.process([reading(1.0, 10), reading(2.0, 20)])
    changed = {**MINUTE, "window": {"kind": "tumbling", "size": 30, "aggregate": "count"}}
    result = stage.reload(configs(changed))
    assert (result.kept, result.changed, result.removed) == ((), ("minute",), ("gone",))
    # The old window's two readings went out, marked partial, instead of being lost.
    (flushed,) = result.outgoing
    assert (flushed.topic, flushed.event.value) == ("minute", 2)
    assert flushed.event.tags is not None and flushed.event.tags["partial"] == "true"
    stage.process([reading(3.0, 25)])
    (out,) = stage.tick(T0 + 30)
    assert out.event.value == 1  # the new rule started empty
    assert stage.stats["minute"].matched == 1


def test_a_rule_set_that_cannot_run_is_refused_and_the_old_one_keeps_running() -> None:
    stage = RuleStage(configs({"name": "a", "publish": {"topic": "old"}}), DEFAULTS)
    with pytest.raises(RuleSetError, match="later rule"):
        stage.reload(
            configs({"name": "a", "from": "b", "publish": {}}, {"name": "b", "drop": True})
        )
    (out,) = stage.process([reading(1.0, 0)])
    assert out.topic == "old"


def test_reload_with_a_broken_rule_file_keeps_the_old_rules_running(tmp_path: Path) -> None:
    config = write(tmp_path / "tidegate.yaml", "drivers: []\nrules_dir: rules.d\n")
    rule_file = write(
        tmp_path / "rules.d" / "10-hot.yaml",
        "- name: hot\n  where: value > 30\n  publish: {topic: hot}\n",
    )
    stage = RuleStage(load_rules_for_reload(config), DEFAULTS)
    assert [o.topic for o in stage.process([reading(35.0, 0)])] == ["hot"]

    write(rule_file, "- name: hot\n  where: value > thirty\n  publish: {topic: hot}\n")
    with pytest.raises(ConfigError) as failed:
        stage.reload(load_rules_for_reload(config))
    assert messages(failed) == (
        f"{rule_file}:2:18: rules[0].where: unknown name 'thirty'; "
        "the event's fields are value, name, source, unit, time, seq, id, tags"
    )
    assert [o.topic for o in stage.process([reading(35.0, 1)])] == ["hot"]  # still running

    write(rule_file, "- name: hot\n  where: value > 40\n  publish: {topic: hot}\n")
    result = stage.reload(load_rules_for_reload(config))
    assert result.changed == ("hot",)
    assert [o.topic for o in stage.process([reading(35.0, 2)])] == ["tg/gw/gh/temperature"]


# -- loading: order and positions --------------------------------------------------------


def test_config_rules_run_first_then_files_in_name_order(tmp_path: Path) -> None:
    config = write(
        tmp_path / "gw.yaml",
        "rules_dir: r\nrules:\n  - name: inline\n    drop: true\n",
    )
    write(tmp_path / "r" / "20-b.yaml", "- name: b1\n  drop: true\n- name: b2\n  drop: true\n")
    write(tmp_path / "r" / "10-a.yaml", "- name: a\n  drop: true\n")
    write(tmp_path / "r" / ".#10-a.yaml", "not: [a rule file")  # an editor's lock file
    write(tmp_path / "r" / "notes.txt", "ignored")
    write(tmp_path / "r" / "30-empty.yaml", "")
    assert [r.name for r in load_rules_for_reload(config)] == ["inline", "a", "b1", "b2"]
    assert [r.name for r in load_rule_path(tmp_path / "r")] == ["a", "b1", "b2"]


def test_problems_across_files_point_at_each_file(tmp_path: Path) -> None:
    first = write(tmp_path / "r" / "10.yaml", "- name: a\n  from: [b]\n  publish: {}\n")
    second = write(tmp_path / "r" / "20.yaml", "- name: b\n  drop: true\n- name: a\n  drop: true\n")
    with pytest.raises(ConfigError) as failed:
        load_rule_path(tmp_path / "r")
    assert messages(failed).splitlines() == [
        f"{second}:3:9: rules[1].name: duplicate rule name 'a' (rule 'a' is at {first}:1:9)",
        f"{first}:2:10: rules[0].from[0]: 'b' is a later rule: events only flow forward, so "
        f"taking its output would make a cycle; move this rule after it "
        f"(rule 'b' is at {second}:1:9)",
    ]


def test_every_broken_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path / "r" / "1.yaml", "name: not-a-list\n")
    write(tmp_path / "r" / "2.yaml", "- name: x\n  dedup: {within: 5s, wthin: 3}\n")
    with pytest.raises(ConfigError) as failed:
        load_rule_path(tmp_path / "r")
    text = messages(failed)
    assert re.search(r"1\.yaml:1:1: a rule file is a YAML list of rules", text)
    assert re.search(
        r"2\.yaml:2:23: rules\[0\]\.dedup\.wthin: unknown key 'wthin' \(did you mean 'within'\?\)",
        text,
    )


def test_a_missing_rules_folder_is_reported_at_its_key(tmp_path: Path) -> None:
    config = write(tmp_path / "gw.yaml", "drivers: []\nrules_dir: nowhere\n")
    with pytest.raises(ConfigError) as failed:
        load_rules_for_reload(config)
    assert messages(failed) == f"{config}:2:12: rules_dir: {tmp_path / 'nowhere'} is not a folder"


@pytest.mark.parametrize(
    ("yaml_value", "line", "column"),
    [
        ("value > 3 and valeu < 9", 1, 24),  # plain
        ('"value > 3 and valeu < 9"', 1, 25),  # double-quoted: one more for the quote
        ("'value > 3 and valeu < 9'", 1, 25),  # single-quoted
        ("|\n    value > 3 and\n      valeu < 9", 3, 7),  # literal block: its own lines
        (">\n    value > 3 and\n    valeu < 9", 3, 5),  # folded block: joined with a space
    ],
)
def test_expression_errors_point_at_the_character(
    tmp_path: Path, yaml_value: str, line: int, column: int
) -> None:
    rules = write(tmp_path / "r.yaml", f"- name: r\n  where: {yaml_value}\n  drop: true\n")
    with pytest.raises(ConfigError) as failed:
        load_rule_path(rules)
    assert messages(failed) == (
        f"{rules}:{line + 1}:{column}: rules[0].where: unknown name 'valeu' (did you mean 'value'?)"
    )
    text = rules.read_text().splitlines()[line]
    assert text[column - 1 :].startswith("valeu")
