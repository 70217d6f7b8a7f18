"""The command line as users run it: a real process each time."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import TIDEGATE
from tidegate import __version__

ROOT = Path(__file__).resolve().parents[2]


def tidegate(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TIDEGATE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_version() -> None:
    proc = tidegate("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"tidegate {__version__}"


@pytest.mark.parametrize("command", [[], ["run"], ["check"], ["simulate"]])
def test_help_everywhere(command: list[str]) -> None:
    proc = tidegate(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout


def test_unknown_command_is_a_usage_error() -> None:
    proc = tidegate("frobnicate")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("example", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_example_passes_check(example: Path) -> None:
    proc = tidegate("check", "-c", str(example))
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_config_path_from_environment(tmp_path: Path) -> None:
    proc = tidegate("check", env={"TIDEGATE_CONFIG": str(ROOT / "config" / "simulate.yaml")})
    assert proc.returncode == 0, proc.stderr
    missing = tidegate("check", env={"TIDEGATE_CONFIG": str(tmp_path / "none.yaml")})
    assert missing.returncode == 2
    assert "none.yaml:1:1: no such file" in missing.stderr


def test_schema_is_json_schema_with_every_driver_kind() -> None:
    proc = tidegate("check", "--schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema["$schema"].endswith("2020-12/schema")
    text = json.dumps(schema)
    for kind in ("sim", "serial", "gpio"):
        assert f'"const": "{kind}"' in text
    assert "commit_interval" in text and "events_per_message" in text


def test_simulate_end_to_end_with_a_local_broker(tmp_path: Path) -> None:
    proc = tidegate("simulate", "--duration", "3", "--data-dir", str(tmp_path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "started a private Mosquitto" in proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("in ")]
    assert len(lines) >= 2
    assert "broker connected" in lines[-1]
    received = int(proc.stdout.split("the local broker received ")[1].split()[0])
    assert received >= 10  # the demo rules aggregate and filter most readings
    assert "Traceback" not in proc.stderr


def test_simulate_without_mosquitto_buffers_and_says_so(tmp_path: Path) -> None:
    proc = tidegate(
        "simulate",
        "--duration",
        "2",
        "--data-dir",
        str(tmp_path),
        env={"TIDEGATE_MOSQUITTO": str(tmp_path / "no-such-binary")},
    )
    assert proc.returncode == 0, proc.stderr
    assert "mosquitto is not installed" in proc.stderr
    assert "outbox" in proc.stderr
    last = [line for line in proc.stdout.splitlines() if line.startswith("in ")][-1]
    depth = int(last.split("outbox")[1].split("·")[0])
    assert depth > 0  # buffered, not lost
