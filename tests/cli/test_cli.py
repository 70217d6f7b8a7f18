"""The command line as users run it: a real process each time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TIDEGATE, tidegate, wait_until
from tidegate import __version__

ROOT = Path(__file__).resolve().parents[2]



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
    assert missing.stderr.splitlines() == [
        f"tidegate: error: no such config file: {tmp_path / 'none.yaml'} "
        "(name one with -c FILE or $TIDEGATE_CONFIG)"
    ]


ONE_DRIVER = """
gateway: {id: single, data_dir: ./data}
drivers:
  - {name: only, type: sim, signals: [{name: n, kind: counter, rate: 1}]}
rules:
  - {name: pass, match: {source: only}, publish: {topic: "t/{name}"}}
"""


def test_check_takes_the_file_as_an_argument_too_and_counts_properly(tmp_path: Path) -> None:
    config = tmp_path / "one.yaml"
    config.write_text(ONE_DRIVER)
    expected = f"{config}: ok — gateway 'single', 1 driver, 1 rule, no broker (buffer only)"
    for args in (["check", str(config)], ["check", "-c", str(config)]):
        proc = tidegate(*args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [expected]
    both = tidegate("check", str(config), "-c", str(tmp_path / "other.yaml"))
    assert both.returncode == 2
    assert both.stderr.splitlines() == [
        "tidegate: error: give the config file once: FILE or -c FILE"
    ]


def typer_app(*args: str) -> subprocess.CompletedProcess[str]:
    """The same command through the typer app, never the plain-form shortcut."""
    code = "from tidegate.cli.main import main; main(shortcuts=False)"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_plain_forms_print_what_the_typer_commands_print(tmp_path: Path) -> None:
    config = tmp_path / "one.yaml"
    config.write_text(ONE_DRIVER)
    missing = str(tmp_path / "control.sock")
    for args in (
        ["check", "-c", str(config)],
        ["check", str(config)],
        ["check", str(tmp_path / "nope.yaml")],
        ["status", "--socket", missing],
        ["status", "--json", "-c", str(config)],
    ):
        fast, slow = tidegate(*args), typer_app(*args)
        assert (fast.returncode, fast.stdout, fast.stderr) == (
            slow.returncode,
            slow.stdout,
            slow.stderr,
        ), args


@pytest.mark.parametrize(
    "command",
    [["status"], ["tail"], ["devices"], ["check"], ["buffer", "stats"], ["buffer", "purge"]],
    ids=" ".join,
)
def test_help_shows_flags_as_flags(command: list[str]) -> None:
    proc = tidegate(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    flags = [line for line in proc.stdout.splitlines() if line.strip().startswith("--")]
    assert flags, proc.stdout
    for line in flags:
        assert "<bool>" not in line and "BOOLEAN" not in line and "--no-" not in line, line


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


def test_after_the_demo_starts_the_next_commands_work_as_written(tmp_path: Path) -> None:
    """The first hour: `./dev simulate` in one terminal, `tidegate status` and `tidegate
    tail` in another, with no options, reach the demo."""
    if Path("/etc/tidegate/tidegate.yaml").exists():
        pytest.skip("/etc/tidegate/tidegate.yaml exists here: plain `status` means the service")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    env.pop("TIDEGATE_CONFIG", None)
    demo = subprocess.Popen(
        [*TIDEGATE, "simulate", "--no-broker", "--duration", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    socket = tmp_path / "tidegate" / "simulate" / "control.sock"
    try:
        wait_until(lambda: socket.exists() or demo.poll() is not None, 30, "the demo's socket")
        assert socket.exists(), demo.stderr.read() if demo.stderr else demo.returncode
        status = tidegate("status", env=env)
        assert status.returncode == 0, status.stderr
        assert "gateway demo" in status.stdout
        tail = tidegate("tail", "-n", "1", env=env)
        assert tail.returncode == 0, tail.stderr
        assert " → tidegate/demo/" in tail.stdout
    finally:
        demo.send_signal(signal.SIGINT)
        _, errors = demo.communicate(timeout=30)
    assert demo.returncode == 0, errors
    assert "from another terminal:" in errors and "status · " in errors


def catches(pid: int, sig: signal.Signals) -> bool:
    """Whether the process has a handler for ``sig`` (/proc's SigCgt mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def test_a_sigterm_during_start_up_is_a_clean_stop(tmp_path: Path) -> None:
    config = tmp_path / "one.yaml"
    config.write_text(ONE_DRIVER)
    gateway = subprocess.Popen(
        [*TIDEGATE, "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The handler is in place before the runtime is imported: from then on a
        # SIGTERM (systemd stopping a unit that is still starting) is a clean stop.
        wait_until(lambda: catches(gateway.pid, signal.SIGTERM), 30, "the SIGTERM handler")
        gateway.send_signal(signal.SIGTERM)
        _, errors = gateway.communicate(timeout=60)
    finally:
        if gateway.poll() is None:
            gateway.kill()
    assert gateway.returncode == 0, errors
    assert "Traceback" not in errors
