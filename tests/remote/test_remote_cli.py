"""`tidegate config history|rollback|push` with no gateway running, and the config checks."""

from __future__ import annotations

from pathlib import Path

from tests.remote.support import BASE_RULE, NEW_RULES, cli, history, push, remote_config
from tests.support import tidegate, write_config
from tidegate.remote.history import History


def test_history_and_rollback_work_from_the_files_alone(tmp_path: Path) -> None:
    config = remote_config(tmp_path)
    remote_file = tmp_path / "rules" / "50-remote.yaml"
    empty = cli("config", "history", config=config)
    assert empty.returncode == 0
    assert empty.stdout == f"no versions yet (in {tmp_path / 'data' / 'rules-history'})\n"

    kept = History(tmp_path / "data" / "rules-history", keep=5)
    kept.add(BASE_RULE.encode(), origin="local", outcome="confirmed")
    kept.add(NEW_RULES.encode(), origin="command:17", outcome="confirmed", previous=1)
    remote_file.write_text(NEW_RULES)

    done = cli("config", "rollback", config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "no gateway is running: version 1 restored as version 3; "
        "the gateway loads it at its next start\n"
    )
    assert remote_file.read_text() == BASE_RULE
    last = history(config)[-1]
    assert (last["origin"], last["outcome"], last["restores"]) == ("rollback", "confirmed", 1)
    table = cli("config", "history", config=config).stdout.splitlines()
    assert [row.split()[0] for row in table] == ["version", "1", "2", "*3"]
    assert "command:17" in table[2]


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    config = remote_config(tmp_path)
    missing = cli("config", "rollback", "7", config=config)
    assert (missing.returncode, missing.stderr) == (
        2,
        "tidegate: error: there is no version 7 (kept: none)\n",
    )
    nothing = cli("config", "rollback", config=config)
    assert (nothing.returncode, nothing.stderr) == (
        2,
        "tidegate: error: there is no earlier confirmed version to roll back to\n",
    )
    plain = write_config(
        tmp_path / "plain.yaml",
        f"gateway: {{data_dir: {tmp_path / 'd2'}}}\n"
        "drivers: [{name: s, type: sim, signals: [{name: n, kind: counter, rate: 1}]}]\n",
    )
    refused = cli("config", "history", config=plain)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"tidegate: error: {plain}: this gateway takes no rules updates: its config has no "
        "`remote_rules:` section\n"
    )
    absent = tidegate("config", "push", str(tmp_path / "nope.yaml"), "-c", str(config))
    assert absent.returncode == 2 and absent.stderr.startswith("tidegate: error: cannot read ")
    not_running = push(config, NEW_RULES)
    assert not_running.returncode == 1
    assert not_running.stderr.startswith("tidegate: error: no gateway is running")


def test_the_remote_file_must_be_one_the_rule_loader_reads(tmp_path: Path) -> None:
    drivers = "drivers: [{name: s, type: sim, signals: [{name: n, kind: counter, rate: 1}]}]\n"
    (tmp_path / "rules").mkdir()
    cases = {
        "remote_rules: {file: other/50-remote.yaml}\nrules_dir: rules\n": (
            "1:22: remote_rules.file: other/50-remote.yaml is not directly inside rules_dir "
            "(rules): the loader would not read it"
        ),
        "remote_rules: {file: rules/.remote.yaml}\nrules_dir: rules\n": (
            "1:22: remote_rules.file: rules/.remote.yaml is not read as a rule file: its name "
            "must end in .yaml, not start with '.'"
        ),
        "remote_rules: {file: rules/remote.yaml}\n": (
            "1:22: remote_rules.file: needs `rules_dir`: the file must be one of the rule "
            "files the loader reads"
        ),
    }
    for text, message in cases.items():
        config = write_config(tmp_path / "gw.yaml", text + drivers)
        done = tidegate("check", str(config))
        assert done.returncode == 2
        assert done.stderr.splitlines()[0] == f"{config}:{message}", text
    good = write_config(
        tmp_path / "gw.yaml",
        "rules_dir: ./rules\nremote_rules: {file: rules/../rules/remote.yaml}\n" + drivers,
    )
    assert tidegate("check", str(good)).returncode == 0
