"""``tidegate cmd send``: a command sent as the cloud would, through a real broker to a
running gateway, its results printed; usage errors are one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from tests.commands.cloud import running
from tests.support import tidegate, write_config
from tidegate.demo.local_broker import LocalBroker


def gateway_config(tmp_path: Path, broker: LocalBroker, protocol: str = "5") -> Path:
    (tmp_path / "cmd.key").write_text("s3cret")
    return write_config(
        tmp_path / "gw.yaml",
        f"""
gateway: {{id: gw1, data_dir: {tmp_path}}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, protocol: "{protocol}"}}
drivers:
  - {{name: s1, type: sim, signals: [{{name: t, kind: sine, rate: 1}}]}}
commands:
  key_file: cmd.key
  allow: [{{name: ping}}, {{name: status}}]
""",
    )


def test_send_waits_for_the_result_and_prints_it(tmp_path: Path, broker: LocalBroker) -> None:
    path = gateway_config(tmp_path, broker)
    with running(path.read_text().replace("key_file: cmd.key", f"key_file: {tmp_path}/cmd.key")):
        done = tidegate("cmd", "send", "ping", "-c", str(path), "--wait")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("accepted")
        assert "done: " in done.stdout and "pong" in done.stdout
        status = tidegate("cmd", "send", "status", "-c", str(path), "--wait", "--json")
        assert status.returncode == 0, status.stderr
        final = json.loads(status.stdout.splitlines()[-1])
        assert final["result"]["gateway"] == "gw1"
        unknown = tidegate("cmd", "send", "reboot", "-c", str(path), "--wait")
        assert unknown.returncode == 1
        assert unknown.stdout.startswith("refused: no command 'reboot'")


def test_send_over_mqtt_3_1_1(tmp_path: Path, broker: LocalBroker) -> None:
    path = gateway_config(tmp_path, broker, protocol="3.1.1")
    with running(path.read_text().replace("key_file: cmd.key", f"key_file: {tmp_path}/cmd.key")):
        done = tidegate("cmd", "send", "ping", "-c", str(path), "--wait")
        assert done.returncode == 0, done.stderr
        assert "done: " in done.stdout


def test_no_answer_says_so(tmp_path: Path, broker: LocalBroker) -> None:
    path = gateway_config(tmp_path, broker)  # no gateway running
    quiet = tidegate("cmd", "send", "ping", "-c", str(path), "--timeout", "0.5")
    assert quiet.returncode == 1
    assert "no answer on tidegate/gw1/cmd/result/" in quiet.stderr


def test_usage_errors_exit_2(tmp_path: Path, broker: LocalBroker) -> None:
    path = gateway_config(tmp_path, broker)
    bad_pair = tidegate("cmd", "send", "ping", "state", "-c", str(path))
    assert bad_pair.returncode == 2
    assert "write KEY=VALUE" in bad_pair.stderr
    bare = write_config(tmp_path / "bare.yaml", path.read_text().split("commands:")[0])
    none = tidegate("cmd", "send", "ping", "-c", str(bare))
    assert none.returncode == 2
    assert "no `commands:` section" in none.stderr
    assert "Traceback" not in none.stderr + bad_pair.stderr
