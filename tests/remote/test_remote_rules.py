"""Remote rules updates against real gateway processes and a real Mosquitto.

An update is validated in the whole rule set (refused with FILE:LINE:COL,
nothing changes), applied, then confirmed while every uplink is connected
and every driver running, or rolled back when not; a gateway that stops
with an update pending rolls it back at its next start. What the rules do
is read back with `tidegate tail` (the topics the running rules route to).
"""

from __future__ import annotations

from pathlib import Path

from tests.remote.support import (
    BASE_RULE,
    INVALID_RULES,
    NEW_RULES,
    cli,
    history,
    mqtt,
    push,
    remote_config,
    start,
    topics,
)
from tests.support import wait_until
from tidegate.demo.local_broker import LocalBroker


def test_a_valid_push_is_confirmed_an_invalid_one_refused_and_a_version_restored(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config = remote_config(tmp_path, mqtt(broker.host, broker.port))
    remote_file = tmp_path / "rules" / "50-remote.yaml"
    gateway = start(config, tmp_path / "gw.log")
    try:
        assert topics(config) == {"old/s"}
        done = push(config, NEW_RULES, "--wait")
        assert done.returncode == 0, done.stderr + gateway.output()
        assert done.stdout.splitlines() == [
            "version 2 applied; confirming within 10 s",
            "version 2 confirmed",
        ]
        assert topics(config) == {"new/s"}
        assert remote_file.read_text() == NEW_RULES

        refused = push(config, INVALID_RULES)
        assert refused.returncode == 2
        lines = refused.stderr.splitlines()
        assert lines[0].startswith("rules/50-remote.yaml:3:10: rules[0].where: unknown name")
        assert lines[-1] == "tidegate: error: version 3 refused: the rules are invalid"
        duplicate = push(config, "- name: other\n  drop: true\n")
        assert duplicate.returncode == 2
        assert "rules/50-remote.yaml:1:9:" in duplicate.stderr
        assert "duplicate" in duplicate.stderr and "10-other.yaml:1:9" in duplicate.stderr
        assert topics(config) == {"new/s"}  # nothing changed
        assert remote_file.read_text() == NEW_RULES

        restored = cli("config", "rollback", "1", "--wait", config=config)
        assert restored.returncode == 0, restored.stderr
        assert restored.stdout.splitlines()[-1] == "version 5 confirmed"
        assert topics(config) == {"old/s"}
        assert remote_file.read_text() == BASE_RULE
        records = [(r["version"], r["origin"], r["outcome"]) for r in history(config)]
        assert records == [
            (1, "local", "confirmed"),
            (2, "cli", "confirmed"),
            (3, "cli", "refused"),
            (4, "cli", "refused"),
            (5, "rollback", "confirmed"),
        ]
        assert history(config)[4]["restores"] == 1
        table = cli("config", "history", config=config).stdout.splitlines()
        header = ["version", "kind", "time", "origin", "outcome", "sha256", "reason"]
        assert table[0].split() == header
        assert table[-1].startswith("*5 ") and "rollback of 1" in table[-1]
    finally:
        code = gateway.stop()
    assert code == 0, gateway.output()


def test_an_update_the_gateway_is_not_healthy_after_is_rolled_back(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config = remote_config(tmp_path, mqtt(broker.host, broker.port), confirm_within="2s")
    remote_file = tmp_path / "rules" / "50-remote.yaml"
    gateway = start(config, tmp_path / "gw.log")
    try:
        wait_until(lambda: "connected" in cli("status", config=config).stdout, 20, "the uplink")
        broker.stop()
        wait_until(
            lambda: "disconnected" in cli("status", config=config).stdout, 20, "the broker gone"
        )
        done = push(config, NEW_RULES, "--wait")
        assert done.returncode == 1
        assert done.stdout.splitlines() == ["version 2 applied; confirming within 2 s"]
        assert done.stderr.splitlines() == [
            "tidegate: error: version 2 rolled back: not healthy within 2 s: "
            "uplink default disconnected"
        ]
        assert remote_file.read_text() == BASE_RULE
        assert topics(config) == {"old/s"}  # the old rules run again
        last = history(config)[-1]
        assert (last["version"], last["outcome"]) == (2, "rolled_back")
        assert "uplink default disconnected" in last["reason"]
        assert "rules update 2 rolled back to version 1" in gateway.output()
    finally:
        code = gateway.stop()
    assert code == 0, gateway.output()


def test_a_gateway_stopped_with_an_update_pending_rolls_it_back_at_start(
    tmp_path: Path, broker: LocalBroker
) -> None:
    # Confirmed only after a minute: the update is still pending when the process dies.
    config = remote_config(
        tmp_path, mqtt(broker.host, broker.port), confirm_within="60s", healthy_for="60s"
    )
    remote_file = tmp_path / "rules" / "50-remote.yaml"
    gateway = start(config, tmp_path / "gw.log")
    try:
        done = push(config, NEW_RULES)
        assert done.returncode == 0, done.stderr
        assert topics(config) == {"new/s"}
        assert history(config)[-1]["outcome"] == "applied"
        busy = push(config, BASE_RULE)
        assert busy.returncode == 1
        assert (
            busy.stderr
            == "tidegate: error: update refused: an update is waiting for confirmation\n"
        )
    finally:
        gateway.kill()  # a crash, a power cut: no chance to tidy up
    assert remote_file.read_text() == NEW_RULES
    again = start(config, tmp_path / "gw2.log")
    try:
        assert remote_file.read_text() == BASE_RULE
        assert topics(config) == {"old/s"}
        last = history(config)[-1]
        assert (last["version"], last["outcome"]) == (2, "rolled_back")
        assert last["reason"] == "the gateway restarted before the update was confirmed"
        assert "rules update 2 rolled back to version 1" in again.output()
    finally:
        code = again.stop()
    assert code == 0, again.output()
