"""What `tidegate reload` prints, against a real gateway process: one line for the rules,
and a note about a restart only for sections that changed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support import TIDEGATE, GatewayProcess, wait_until, write_config


def config_text(tmp_path: Path, rate: int, rules: str) -> str:
    return f"""
gateway: {{id: proc, data_dir: {tmp_path / "data"}}}
control: {{socket: {tmp_path / "control.sock"}}}
drivers:
  - name: alpha
    type: sim   # a comment, changed by hand: {rate}
    signals: [{{name: n, kind: counter, rate: {rate}}}]
{rules}"""


ONE_RULE = """rules:
  - name: counters
    match: {name: n}
    publish: {topic: "{prefix}/counters/{source}"}
"""
TWO_RULES = (
    ONE_RULE
    + """  - name: quiet
    match: {name: q}
    drop: true
"""
)


def reload(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TIDEGATE, "reload", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ),
    )


def test_reload_says_what_it_applied_once_and_a_restart_only_when_needed(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "tidegate.yaml", config_text(tmp_path, 50, ONE_RULE))
    gateway = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        process = gateway.process
        assert process is not None
        socket = tmp_path / "control.sock"
        wait_until(lambda: socket.exists() or process.poll() is not None, 30, "the socket")
        assert socket.exists(), gateway.output()

        config.write_text(config_text(tmp_path, 50, TWO_RULES).replace("# a comment", "# new"))
        rules_only = reload(config)
        assert rules_only.returncode == 0, rules_only.stderr
        assert rules_only.stdout.splitlines() == [
            "rules reloaded: 1 kept, 1 added, 0 changed, 0 removed"
        ]

        config.write_text(config_text(tmp_path, 20, ONE_RULE))
        with_drivers = reload(config)
        assert with_drivers.returncode == 0, with_drivers.stderr
        assert with_drivers.stdout.splitlines() == [
            "rules reloaded: 1 kept, 0 added, 0 changed, 1 removed",
            "not applied until a restart: the changes to drivers "
            "(a reload applies rules and rules_dir)",
        ]
    finally:
        assert gateway.stop() == 0, gateway.output()
    assert "gateway stopped: " in gateway.output()
