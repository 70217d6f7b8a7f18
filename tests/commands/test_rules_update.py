"""The ``rules_update`` command: a rules file sent by the cloud is validated, applied,
and confirmed by the gateway's health (``done``), or refused with its positions and
nothing changed; the history records both."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.commands.cloud import Cloud, running
from tests.remote.support import BASE_RULE, INVALID_RULES, NEW_RULES, mqtt, remote_config
from tests.support import wait_until
from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker
from tidegate.errors import ConfigError

COMMANDS = "\ncommands:\n  allow: [{name: rules_update}]\n"


def test_a_pushed_rules_file_is_confirmed_or_refused(tmp_path: Path, broker: LocalBroker) -> None:
    path = remote_config(tmp_path, mqtt("127.0.0.1", broker.port), healthy_for="200ms")
    path.write_text(path.read_text() + COMMANDS)
    remote_file = tmp_path / "rules" / "50-remote.yaml"
    with running(path) as gateway, Cloud(broker.port, "tidegate/remote/cmd") as cloud:
        bad = cloud.final(cloud.send("rules_update", {"rules": INVALID_RULES}))
        assert (bad["status"], bad["reason"]) == ("refused", "bad_arguments")
        assert any(":3:10:" in line for line in bad["details"])
        assert remote_file.read_text() == BASE_RULE  # nothing changed
        good = cloud.send("rules_update", {"rules": NEW_RULES})
        final = cloud.final(good, timeout=20)
        assert final["status"] == "done", final
        steps = [r["status"] for r in cloud.of(good)]
        assert steps == ["accepted", "done"]
        assert remote_file.read_text() == NEW_RULES
        assert "remote" in gateway.rules.stats  # the pushed rule runs
        wrong = cloud.final(cloud.send("rules_update", {"rules": 42}))
        assert (wrong["status"], wrong["reason"]) == ("refused", "bad_arguments")
    history = sorted((tmp_path / "data" / "rules-history").glob("*.json"))
    outcomes = [json.loads(p.read_text())["outcome"] for p in history]
    assert "confirmed" in outcomes and "refused" in outcomes


def test_rules_update_needs_remote_rules(broker: LocalBroker) -> None:
    text = f"""
mqtt: {{host: 127.0.0.1, port: {broker.port}}}
drivers: [{{name: s, type: sim, signals: [{{name: n, kind: counter, rate: 1}}]}}]
commands:
  allow: [{{name: rules_update}}]
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    assert "rules_update needs a `remote_rules:` section" in str(caught.value)
    assert str(caught.value).startswith("<config>:5:18:")


def test_a_second_push_while_one_waits_is_busy(tmp_path: Path, broker: LocalBroker) -> None:
    path = remote_config(tmp_path, mqtt("127.0.0.1", broker.port), healthy_for="2s")
    path.write_text(path.read_text() + COMMANDS)
    with running(path), Cloud(broker.port, "tidegate/remote/cmd") as cloud:
        first = cloud.send("rules_update", {"rules": NEW_RULES})
        wait_until(lambda: bool(cloud.of(first)), 10, "the first push accepted")
        second = cloud.final(cloud.send("rules_update", {"rules": BASE_RULE}))
        assert (second["status"], second["reason"]) == ("refused", "busy")
        assert cloud.final(first, timeout=20)["status"] == "done"


def test_a_push_the_gateway_is_not_healthy_after_is_rolled_back_and_audited_failed(
    tmp_path: Path, broker: LocalBroker
) -> None:
    path = remote_config(
        tmp_path, mqtt("127.0.0.1", broker.port), confirm_within="2s", healthy_for="1s"
    )
    path.write_text(path.read_text() + COMMANDS)
    remote_file = tmp_path / "rules" / "50-remote.yaml"
    with running(path) as gateway, Cloud(broker.port, "tidegate/remote/cmd") as cloud:
        push = cloud.send("rules_update", {"rules": NEW_RULES})
        wait_until(lambda: bool(cloud.of(push)), 10, "the push accepted")
        broker.stop()  # the uplink goes: the new rules are not confirmed
        wait_until(lambda: remote_file.read_text() == BASE_RULE, 20, "the roll-back")
        wait_until(lambda: "remote" not in gateway.rules.stats, 10, "the old rules again")
        assert "base" in gateway.rules.stats

        def audited() -> tuple[str, str | None] | None:
            with sqlite3.connect(tmp_path / "data" / "outbox.db") as db:
                row = db.execute(
                    "SELECT status, result FROM command_audit WHERE id = ?", (push,)
                ).fetchone()
            return None if row is None or row[0] != "failed" else row

        wait_until(lambda: audited() is not None, 10, "the failure in the audit")
        row = audited()
        assert row is not None and "rolled back" in str(row[1])


def test_a_pushed_rule_naming_an_action_the_gateway_lacks_is_refused(
    tmp_path: Path, broker: LocalBroker
) -> None:
    path = remote_config(tmp_path, mqtt("127.0.0.1", broker.port))
    path.write_text(path.read_text() + COMMANDS)
    remote_file = tmp_path / "rules" / "50-remote.yaml"
    acting = "- name: remote\n  match: {name: n}\n  action: {run: fan, args: {speed: 2}}\n"
    with running(path) as gateway, Cloud(broker.port, "tidegate/remote/cmd") as cloud:
        refused = cloud.final(cloud.send("rules_update", {"rules": acting}))
        assert (refused["status"], refused["reason"]) == ("refused", "bad_arguments")
        assert "no action 'fan'" in json.dumps(refused)
        assert remote_file.read_text() == BASE_RULE
        assert "remote" not in gateway.rules.stats
