"""Reaching the gateway `tidegate simulate -c FILE` runs: its socket and outbox are in a
folder of its own below the demo's, not in FILE's data_dir, so `status|tail|reload -c
FILE` and `buffer … -c FILE` say in their one line which command reaches it, and a
plain `tidegate status` names every one that runs (real processes, sockets, files)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

from paho.mqtt import publish

from tests.ops.test_control import until
from tests.support import TIDEGATE, wait_until, write_config
from tidegate.demo.local_broker import LocalBroker
from tidegate.demo.watch import WatchCounts, watch
from tidegate.ops import unix_socket
from tidegate.ops.control_socket import locate_socket

CONFIG = """
gateway: {{id: labpi, data_dir: {data}}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: 20}}]
"""


def laptop_env(state: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    env.pop("TIDEGATE_CONFIG", None)
    return env


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TIDEGATE, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def the_command_it_names(stderr: str) -> list[str]:
    """The `tidegate …` the one error line ends with, as arguments."""
    (line,) = stderr.splitlines()
    return line.rsplit(": tidegate ", 1)[1].split()


def test_status_tail_reload_and_buffer_of_a_config_name_its_simulated_gateway(
    tmp_path: Path,
) -> None:
    env = laptop_env(tmp_path / "state")
    own = tmp_path / "state" / "tidegate" / "simulate" / "labpi"
    config = write_config(tmp_path / "my.yaml", CONFIG.format(data=tmp_path / "data"))
    simulation = subprocess.Popen(
        [*TIDEGATE, "simulate", "-c", str(config), "--no-broker", "--duration", "90"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_until(
            lambda: (own / "control.sock").exists() or simulation.poll() is not None,
            30,
            "the simulated gateway's socket",
        )
        assert simulation.poll() is None, simulation.stderr.read() if simulation.stderr else ""
        for command in ("status", "tail", "reload"):
            told = run(command, "-c", str(config), env=env)
            assert told.returncode == 1
            assert told.stderr.startswith("tidegate: error: no gateway is running")
            assert the_command_it_names(told.stderr) == [
                command,
                "--socket",
                str(own / "control.sock"),
            ]
        reached = run(
            *the_command_it_names(run("status", "-c", str(config), env=env).stderr), env=env
        )
        assert reached.returncode == 0, reached.stderr
        assert "labpi" in reached.stdout

        if not Path("/etc/tidegate/tidegate.yaml").exists():  # else plain status means it
            plain = run("status", env=env)
            assert plain.returncode == 1
            assert f"a simulated gateway 'labpi' runs: tidegate status --socket {own}" in (
                plain.stderr
            )

        wait_until((own / "outbox.db").exists, 30, "the simulated outbox")
        for command in ("stats", "peek"):
            told = run("buffer", command, "-c", str(config), env=env)
            assert told.returncode == 1
            assert told.stderr.startswith(
                f"tidegate: error: no outbox at {tmp_path / 'data' / 'outbox.db'}"
            )
            assert the_command_it_names(told.stderr) == [
                "buffer",
                command,
                "--db",
                str(own / "outbox.db"),
            ]
        stats = run(
            *the_command_it_names(run("buffer", "stats", "-c", str(config), env=env).stderr),
            env=env,
        )
        assert stats.returncode == 0, stats.stderr
    finally:
        simulation.send_signal(signal.SIGINT)
        _, banner = simulation.communicate(timeout=30)
    assert simulation.returncode == 0, banner
    assert f"buffer peek --db {own / 'outbox.db'}" in banner

    # Stopped: nothing runs to point at; its outbox is still there to look into.
    gone = run("status", "-c", str(config), env=env)
    assert gone.stderr.strip() == (
        f"tidegate: error: no gateway is running (nothing listens on "
        f"{tmp_path / 'data' / 'control.sock'})"
    )
    kept = run("buffer", "stats", "-c", str(config), env=env)
    assert the_command_it_names(kept.stderr)[-1] == str(own / "outbox.db")


def test_a_socket_left_by_a_killed_simulation_is_not_named(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    own = tmp_path / "state" / "tidegate" / "simulate" / "labpi"
    own.mkdir(parents=True)
    config = write_config(tmp_path / "my.yaml", CONFIG.format(data=tmp_path / "data"))
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bound, never listening: what a kill leaves (through the gateway's own binding, which
    # takes a path of any length: a parallel run's temporary folders are deep).
    unix_socket.bind(left, own / "control.sock")
    try:
        target = locate_socket(None, config, env)
        assert target.explain("status") == (
            f"no gateway is running (nothing listens on {tmp_path / 'data' / 'control.sock'})"
        )
        left.listen()
        assert target.explain("tail").endswith(f"tidegate tail --socket {own / 'control.sock'}")
        assert f"'labpi' runs: tidegate status --socket {own / 'control.sock'}" in (
            locate_socket(None, None, env).explain("status")
        )
    finally:
        left.close()


def test_the_broker_count_leaves_the_gateways_status_messages_out_of_the_events(
    broker: LocalBroker,
) -> None:
    """Simulate's "received" is compared with "delivered": the retained `online` status
    message is not an event."""

    async def body() -> WatchCounts:
        counts = WatchCounts()
        watcher = asyncio.create_task(
            watch(broker.host, broker.port, "tidegate/labpi/#", counts, "tidegate/labpi/status")
        )
        try:
            await until(lambda: counts.connected, 30, "the watcher's subscription")
            await asyncio.to_thread(
                publish.multiple,
                [
                    {"topic": "tidegate/labpi/status", "payload": "online", "retain": True},
                    {"topic": "tidegate/labpi/alpha/n", "payload": '[{"v": 1}, {"v": 2}]'},
                    {"topic": "tidegate/labpi/alpha/n", "payload": '{"v": 3}'},
                ],
                hostname=broker.host,
                port=broker.port,
            )
            await until(lambda: counts.events >= 3 and counts.status >= 1, 30, "the messages")
        finally:
            watcher.cancel()
        return counts

    counts = asyncio.run(body())
    assert (counts.events, counts.messages, counts.status) == (3, 2, 1)


def test_simulate_names_the_line_to_switch_to_sim_for_a_device_not_on_this_machine(
    tmp_path: Path,
) -> None:
    absent = tmp_path / "no-w1"
    config = write_config(
        tmp_path / "my.yaml",
        f"gateway: {{id: labpi, data_dir: {tmp_path / 'data'}}}\n"
        "drivers:\n"
        "  - name: tank\n"
        "    type: onewire\n"
        f"    path: {absent}\n",
    )
    done = run(
        "simulate",
        "-c",
        str(config),
        "--no-broker",
        "--duration",
        "1.5",
        env=laptop_env(tmp_path / "state"),
    )
    assert done.returncode == 0, done.stderr
    told = (
        f"tank: path {absent} is not on this machine; to simulate it, change it to "
        f"`path: sim` ({config}:5)"
    )
    assert done.stderr.count(told) == 1, done.stderr
