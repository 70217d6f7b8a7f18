"""Whole config updates against real gateway processes and a real Mosquitto.

A new config is validated as `tidegate check` would (refused with NAME:LINE:COL,
nothing changes), written, and the gateway restarted on it: in the foreground
the same process runs the same command line again (same pid), under systemd
it exits 75 and is started again. At that start the version is confirmed by
health, or the previous file is put back and the gateway restarts once more;
a gateway that cannot start on it, or dies before it is healthy, rolls it back.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.commands.cloud import Cloud
from tests.remote.support import cli, history, remote_config, start
from tests.support import GatewayProcess, wait_until
from tidegate.demo.local_broker import LocalBroker


def whole(
    tmp_path: Path,
    port: int,
    *,
    confirm_within: str = "10s",
    drivers: tuple[str, ...] = ("s",),
    extra: str = "",
) -> str:
    """A config taking whole-config updates (the rules of `remote_config`)."""
    sim = "".join(
        f"  - {{name: {name}, type: sim, signals: [{{name: n, kind: counter, rate: 50}}]}}\n"
        for name in drivers
    )
    return f"""gateway: {{id: remote, data_dir: {tmp_path / "data"}}}
control: {{socket: {tmp_path / "control.sock"}}}
mqtt: {{host: 127.0.0.1, port: {port}, reconnect: {{initial_delay: 100ms}}}}
rules_dir: rules
remote_rules:
  file: rules/50-remote.yaml
  confirm_within: {confirm_within}
  healthy_for: 300ms
  whole_config: true
{extra}drivers:
{sim}"""


def setup(tmp_path: Path, port: int, *, extra: str = "") -> tuple[Path, str]:
    config = remote_config(tmp_path)  # the rule files
    text = whole(tmp_path, port, extra=extra)
    config.write_text(text)
    return config, text


def push_whole(config: Path, text: str, *extra: str) -> tuple[int, list[str], list[str]]:
    pushed = config.parent / "pushed.yaml"
    pushed.write_text(text)
    done = cli("config", "push", "--whole", str(pushed), *extra, config=config)
    return done.returncode, done.stdout.splitlines(), done.stderr.splitlines()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def connected(config: Path) -> bool:
    done = cli("status", "--json", config=config)
    return done.returncode == 0 and '"connected"' in done.stdout


def config_records(config: Path) -> list[tuple[int, str, str]]:
    return [
        (r["version"], r["origin"], r["outcome"]) for r in history(config) if r["kind"] == "config"
    ]


def test_a_whole_config_is_applied_with_a_restart_confirmed_and_restored(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config, first = setup(tmp_path, broker.port)
    gateway = start(config, tmp_path / "gw.log")
    assert gateway.process is not None
    try:
        second = whole(tmp_path, broker.port, drivers=("s", "t"))
        code, out, err = push_whole(config, second, "--wait")
        assert code == 0, [*err, gateway.output()]
        assert out == [
            "version 2 applied; the gateway restarts to confirm it within 10 s",
            "version 2 confirmed",
        ]
        assert gateway.process.poll() is None  # the same process, the same pid, again
        assert "restarting (config update 2): running the same command again" in gateway.output()
        assert config.read_text() == second
        tail = cli("tail", "--json", "-n", "1", "--source", "t", config=config)
        assert tail.returncode == 0 and '"source":"t"' in tail.stdout.replace(" ", "")
        assert config_records(config) == [(1, "local", "confirmed"), (2, "cli", "confirmed")]
        assert history(config)[-1]["starts"] == 1

        restored = cli("config", "rollback", "1", "--wait", config=config)
        assert restored.returncode == 0, restored.stderr + gateway.output()
        assert restored.stdout.splitlines()[-1].endswith("confirmed")
        assert config.read_text() == first
        last = history(config)[-1]
        assert (last["kind"], last["origin"], last["restores"]) == ("config", "rollback", 1)
        table = cli("config", "history", config=config).stdout.splitlines()
        header = ["version", "kind", "time", "origin", "outcome", "sha256", "reason"]
        assert table[0].split() == header
        assert table[-1].startswith(f"*{last['version']} ") and "rollback of 1" in table[-1]
        assert gateway.process.poll() is None
    finally:
        code = gateway.stop()
    assert code == 0, gateway.output()


def test_an_invalid_or_unsafe_whole_config_is_refused_and_nothing_changes(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config, first = setup(tmp_path, broker.port)
    gateway = start(config, tmp_path / "gw.log")
    try:
        invalid = first.replace("kind: counter", "kind: countr")
        code, _, err = push_whole(config, invalid)
        assert code == 2
        assert err[0].startswith("tidegate.yaml:11:"), err
        assert "countr" in err[0]
        assert err[-1] == "tidegate: error: version 1 refused: the config is invalid"

        dropped = first.replace("remote_rules:", "old_remote_rules:").split("old_remote_rules")[0]
        dropped += "drivers:\n" + first.split("drivers:\n")[1]
        code, _, err = push_whole(config, dropped)
        assert code == 2
        assert err[0] == (
            "tidegate.yaml:1:1: the new config has no `remote_rules:`: the gateway could not "
            "confirm it or roll it back at its next start, nor take another update"
        )
        moved = first.replace(str(tmp_path / "data"), str(tmp_path / "elsewhere"))
        code, _, err = push_whole(config, moved)
        assert code == 2 and "the new config moves the outbox" in err[0], err
        assert err[0].startswith("tidegate.yaml:1:")

        assert config.read_text() == first
        assert "restarting" not in gateway.output()
        outcomes = [outcome for _, _, outcome in config_records(config)]
        assert outcomes == ["refused", "refused", "refused"]
    finally:
        code = gateway.stop()
    assert code == 0, gateway.output()


def test_a_whole_config_that_cannot_connect_is_rolled_back(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config, first = setup(tmp_path, broker.port)
    gateway = start(config, tmp_path / "gw.log")
    assert gateway.process is not None
    try:
        wrong = whole(tmp_path, free_port(), confirm_within="2s")
        code, out, err = push_whole(config, wrong, "--wait")
        assert code == 1, gateway.output()
        assert out == ["version 2 applied; the gateway restarts to confirm it within 2 s"]
        assert err == [
            "tidegate: error: version 2 rolled back: not healthy within 2 s: "
            "uplink default disconnected"
        ]
        assert config.read_text() == first
        wait_until(lambda: connected(config), 30, "the gateway back on its old broker")
        assert gateway.process.poll() is None
        assert "config update 2 rolled back to version 1" in gateway.output()
    finally:
        code = gateway.stop()
    assert code == 0, gateway.output()


def test_a_whole_config_the_gateway_cannot_start_on_is_rolled_back(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config, first = setup(tmp_path, broker.port)
    gateway = start(config, tmp_path / "gw.log")
    assert gateway.process is not None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        metrics = f"metrics: {{prometheus: {{listen: '127.0.0.1:{port}'}}}}\n"
        try:
            busy = whole(tmp_path, broker.port, extra=metrics)
            code, _, err = push_whole(config, busy, "--wait")
            assert code == 1, gateway.output()
            assert len(err) == 1 and err[0].startswith(
                "tidegate: error: version 2 rolled back: the gateway could not start on it: "
                f"cannot serve Prometheus metrics on 127.0.0.1:{port}: "
            )
            assert "address already in use" in err[0].lower()
            assert config.read_text() == first
            wait_until(lambda: connected(config), 30, "the gateway on its old config")
            assert gateway.process.poll() is None
        finally:
            code = gateway.stop()
    assert code == 0, gateway.output()


def test_a_gateway_killed_before_it_is_healthy_rolls_back_at_the_next_start(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config, first = setup(tmp_path, broker.port)
    gateway = start(config, tmp_path / "gw.log")
    wrong = whole(tmp_path, free_port(), confirm_within="60s")
    try:
        code, _, err = push_whole(config, wrong)
        assert code == 0, err
        wait_until(
            lambda: history(config)[-1]["starts"] == 1, 30, "the restarted gateway on trial"
        )
    finally:
        gateway.kill()  # dies on trial: a crash loop, a power cut
    assert config.read_text() == wrong
    again = start(config, tmp_path / "gw2.log")
    try:
        assert config.read_text() == first
        last = history(config)[-1]
        assert (last["version"], last["outcome"]) == (2, "rolled_back")
        assert last["reason"] == "the gateway stopped before it was healthy on it (start 1)"
        assert "config update 2 rolled back to version 1" in again.output()
        wait_until(lambda: connected(config), 30, "the gateway on its old config")
    finally:
        code = again.stop()
    assert code == 0, again.output()


@contextmanager
def notify_socket(path: Path) -> Iterator[dict[str, str]]:
    """What systemd gives a Type=notify service: a datagram socket to talk to."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield {"NOTIFY_SOCKET": str(path)}


COMMANDS = "commands: {allow: [{name: config_update}]}\n"


def test_the_config_update_command_under_systemd_exits_75_and_is_done_after_the_restart(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config, _ = setup(tmp_path, broker.port, extra=COMMANDS)
    new = whole(tmp_path, broker.port, drivers=("s", "t"), extra=COMMANDS)
    with (
        notify_socket(tmp_path / "notify") as env,
        Cloud(broker.port, "tidegate/remote/cmd") as cloud,
    ):
        gateway = GatewayProcess(config, tmp_path / "gw.log", env).start()
        try:
            wait_until(lambda: connected(config), 30, "the gateway connected")
            bad = cloud.final(cloud.send("config_update", {"config": "drivers: 3\n"}))
            assert (bad["status"], bad["reason"]) == ("refused", "bad_arguments")
            assert bad["details"][0].startswith("tidegate.yaml:1:10: drivers:"), bad
            ident = cloud.send("config_update", {"config": new})
            assert gateway.wait(30) == 75, gateway.output()
        finally:
            gateway.stop()
        accepted = cloud.of(ident)
        assert [r["status"] for r in accepted] == ["accepted"]
        assert accepted[0]["result"] == {"version": 3}
        assert config.read_text() == new
        again = GatewayProcess(config, tmp_path / "gw2.log", env).start()  # as systemd would
        try:
            final = cloud.final(ident, timeout=30)
            assert (final["status"], final["result"]) == ("done", {"version": 3}), final
            assert final["message"] == "version 3 confirmed"
            assert cloud.correlations[cloud.results.index(final)] == ident.encode()
            answers = len(cloud.of(ident))
            cloud.send("config_update", {"config": new}, ident=ident)  # asked again: not redone
            wait_until(lambda: len(cloud.of(ident)) > answers, 10, "the repeated answer")
            repeated = cloud.of(ident)[-1]
            assert repeated["status"] == "done" and repeated["repeated"] is True
        finally:
            code = again.stop()
        assert code == 0, again.output()
    rows = cli("buffer", "commands", "--jsonl", config=config).stdout
    assert '"status": "done"' in rows or '"status":"done"' in rows


def test_config_update_needs_whole_config(tmp_path: Path) -> None:
    config, text = setup(tmp_path, 1883, extra=COMMANDS)
    config.write_text(text.replace("  whole_config: true\n", ""))
    done = cli("check", config=config)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (
        f"{config}:9:27: commands.allow[0]: config_update needs `remote_rules: "
        "{whole_config: true}` (how long to wait for health after the restart, where the "
        "versions are kept)"
    )
