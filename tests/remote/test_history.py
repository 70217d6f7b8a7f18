"""The kept versions on disk: bounded, atomic, and what a roll-back needs is never pruned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tidegate.errors import ConfigError
from tidegate.remote.history import History, sha256, write_atomically
from tidegate.remote.update import earlier
from tidegate.remote.validate import check_rule_text


def test_the_history_keeps_keep_confirmed_versions_besides_the_current_one(
    tmp_path: Path,
) -> None:
    history = History(tmp_path / "h", keep=2)
    for n in range(6):
        history.add(f"- {{name: r{n}, drop: true}}\n".encode(), origin="cli", outcome="confirmed")
    for _ in range(4):
        history.add(b"broken", origin="cli", outcome="refused", reason="x.yaml:1:1: bad")
    kept = [(v.version, v.outcome) for v in history.versions()]
    confirmed = [(4, "confirmed"), (5, "confirmed"), (6, "confirmed")]
    assert kept == [*confirmed, (9, "refused"), (10, "refused")]
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == sorted(
        f"{v:04d}.{ext}" for v in (4, 5, 6, 9, 10) for ext in ("json", "yaml")
    )
    assert history.text(6) == b"- {name: r5, drop: true}\n"
    sixth = history.get(6)
    assert sixth is not None and sixth.sha256 == sha256(history.text(6))
    assert history.current() == history.get(6)
    assert earlier(history) == history.get(5)


def test_a_pending_version_and_the_one_it_restores_stay(tmp_path: Path) -> None:
    history = History(tmp_path / "h", keep=1)
    first = history.add(b"a", origin="local", outcome="confirmed")
    for _ in range(3):
        history.add(b"x", origin="cli", outcome="rolled_back", previous=first.version)
    pending = history.add(b"b", origin="command:7", outcome="applied", previous=first.version)
    history.add(b"c", origin="cli", outcome="refused")
    assert history.pending() == pending
    assert history.get(first.version) is not None  # what a roll-back would restore
    marked = history.mark(pending, "confirmed")
    assert history.pending() is None and history.current() == marked
    record = json.loads((tmp_path / "h" / f"{pending.version:04d}.json").read_text())
    assert record["outcome"] == "confirmed" and record["origin"] == "command:7"
    assert record["time"].endswith("Z")


def test_a_record_half_written_by_a_crash_is_not_a_version(tmp_path: Path) -> None:
    history = History(tmp_path / "h", keep=3)
    history.add(b"a", origin="cli", outcome="confirmed")
    (tmp_path / "h" / "0002.json").write_text('{"version": 2, "ti')
    (tmp_path / "h" / ".0003.json.123.tmp").write_text("{}")
    assert [v.version for v in history.versions()] == [1]
    assert history.add(b"b", origin="cli", outcome="confirmed").version == 2


def test_an_atomic_write_leaves_the_new_bytes_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "rules.yaml"
    target.write_text("old")
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["rules.yaml"]


def test_pushed_text_is_checked_with_the_rest_of_the_set(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "10-a.yaml").write_text("- {name: a, drop: true}\n")
    config = tmp_path / "gw.yaml"
    config.write_text("rules_dir: rules\nrules:\n  - {name: inline, drop: true}\n")
    file = tmp_path / "rules" / "50-remote.yaml"
    assert check_rule_text(config, file, "- {name: b, from: a, drop: true}\n", ["default"]) == 3
    with pytest.raises(ConfigError) as chained:
        check_rule_text(config, file, "- {name: b, from: nothing, drop: true}\n", [])
    assert chained.value.messages[0].startswith("rules/50-remote.yaml:1:")
    with pytest.raises(ConfigError) as routed:
        check_rule_text(config, file, "- {name: b, publish: {uplink: cloud}}\n", ["default"])
    assert routed.value.messages == [
        "rule 'b': publish.uplink: no uplink named 'cloud' (the uplinks are default)"
    ]
    with pytest.raises(ConfigError) as not_a_list:
        check_rule_text(config, file, "name: b\n", [])
    assert not_a_list.value.messages == [
        "rules/50-remote.yaml:1:1: a rule file is a YAML list of rules (`- name: ...`)"
    ]
