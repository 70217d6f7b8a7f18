"""A gateway with a `remote_rules:` section, as a real process, and what the tests ask it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support import GatewayProcess, tidegate, wait_until, write_config

BASE_RULE = "- name: base\n  publish: {topic: 'old/{source}'}\n"
"""What the remote file holds at first (before any update: recorded as origin `local`)."""
OTHER_RULE = "- name: other\n  match: {name: never}\n  drop: true\n"
"""In `10-other.yaml`, beside the remote file: a pushed rule may not take its name."""
NEW_RULES = "- name: remote\n  publish: {topic: 'new/{source}'}\n"
INVALID_RULES = "- name: remote\n  match: {name: n}\n  where: 'valeu > 1'\n  publish: {topic: x}\n"
"""Line 3, column 10: the misspelled name inside the expression."""


def remote_config(
    tmp_path: Path,
    broker: str = "",
    *,
    confirm_within: str = "10s",
    healthy_for: str = "500ms",
    keep: int = 5,
) -> Path:
    """A gateway whose remote updates replace `rules/50-remote.yaml` (at first
    BASE_RULE: events go to old/…), beside `rules/10-other.yaml`."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "10-other.yaml").write_text(OTHER_RULE)
    (rules / "50-remote.yaml").write_text(BASE_RULE)
    return write_config(
        tmp_path / "tidegate.yaml",
        f"""
gateway: {{id: remote, data_dir: {tmp_path / "data"}}}
control: {{socket: {tmp_path / "control.sock"}}}
{broker}
rules_dir: rules
remote_rules:
  file: rules/50-remote.yaml
  confirm_within: {confirm_within}
  healthy_for: {healthy_for}
  keep: {keep}
drivers:
  - name: s
    type: sim
    signals: [{{name: n, kind: counter, rate: 50}}]
""",
    )


def mqtt(host: str, port: int) -> str:
    return f"mqtt: {{host: {host}, port: {port}, reconnect: {{initial_delay: 100ms}}}}"


def start(config: Path, log: Path) -> GatewayProcess:
    gateway = GatewayProcess(config, log).start()
    process = gateway.process
    assert process is not None
    # The log, not the socket file: a killed gateway leaves its socket behind.
    wait_until(
        lambda: "control API on" in gateway.output() or process.poll() is not None,
        30,
        "the control socket",
    )
    assert process.poll() is None, f"the gateway exited:\n{gateway.output()}"
    return gateway


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return tidegate(*args, "-c", str(config))


def push(config: Path, text: str, *extra: str) -> subprocess.CompletedProcess[str]:
    pushed = config.parent / "pushed.yaml"
    pushed.write_text(text)
    return cli("config", "push", str(pushed), *extra, config=config)


def topics(config: Path, n: int = 5) -> set[str]:
    """The topics of the next ``n`` events the gateway routes (what its rules do now)."""
    done = cli("tail", "--json", "-n", str(n), config=config)
    assert done.returncode == 0, done.stderr
    return {json.loads(line)["topic"] for line in done.stdout.splitlines()}


def history(config: Path) -> list[dict[str, Any]]:
    done = cli("config", "history", "--json", config=config)
    assert done.returncode == 0, done.stderr
    records: list[dict[str, Any]] = json.loads(done.stdout)
    return records
