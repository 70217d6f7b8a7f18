"""The notify protocol, seen by a datagram socket the test listens on (as systemd would)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import GatewayProcess, wait_until, write_config
from tidegate.ops.sdnotify import Notifier


class NotifyListener:
    """Plays systemd's side: a SOCK_DGRAM socket that collects notify messages."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)

    def receive(self, timeout: float) -> tuple[float, str] | None:
        """The next message and when it arrived, or None when none came in ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        return time.monotonic(), data.decode()

    def expect(
        self, wanted: str, timeout: float, sender: subprocess.Popen[bytes] | None = None
    ) -> tuple[float, str]:
        """Read until a message with the line ``wanted`` arrives; fail after ``timeout``,
        or as soon as the ``sender`` process has exited."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while (left := deadline - time.monotonic()) > 0:
            got = self.receive(min(left, 0.5))
            if got is None:
                if sender is not None and sender.poll() is not None:
                    raise AssertionError(
                        f"the process exited ({sender.returncode}) before {wanted}"
                    )
                continue
            seen.append(got[1])
            if wanted in got[1].split("\n"):
                return got
        raise AssertionError(f"no {wanted} within {timeout} s; got {seen}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    instance = NotifyListener(str(tmp_path / "notify.sock"))
    try:
        yield instance
    finally:
        instance.close()


def test_ready_status_reloading_and_stopping_reach_the_socket(listener: NotifyListener) -> None:
    notifier = Notifier(listener.address)
    assert notifier.ready("gateway gw running")
    assert listener.expect("READY=1", 5)[1] == "READY=1\nSTATUS=gateway gw running"
    assert notifier.reloading()
    reloading = listener.expect("RELOADING=1", 5)[1].split("\n")
    assert reloading[1].startswith("MONOTONIC_USEC=")
    usec = int(reloading[1].split("=")[1])
    assert abs(usec / 1e6 - time.clock_gettime(time.CLOCK_MONOTONIC)) < 60
    assert notifier.stopping()
    assert listener.expect("STOPPING=1", 5)[1] == "STOPPING=1"
    notifier.close()


def test_abstract_namespace_socket() -> None:
    abstract = NotifyListener(f"@tidegate-test-{uuid.uuid4().hex}")
    try:
        assert Notifier(abstract.address).watchdog()
        assert abstract.expect("WATCHDOG=1", 5)[1] == "WATCHDOG=1"
    finally:
        abstract.close()


def test_environment_is_read_and_unset(listener: NotifyListener) -> None:
    env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "3000000", "OTHER": "x"}
    notifier = Notifier.from_env(env)
    assert notifier.enabled
    assert notifier.watchdog_timeout == 3.0
    assert notifier.watchdog_interval == 1.5
    assert env == {"OTHER": "x"}  # a child process must not talk to systemd as us

    for_another = {
        **env,
        "NOTIFY_SOCKET": listener.address,
        "WATCHDOG_USEC": "3000000",
        "WATCHDOG_PID": str(os.getpid() + 1),
    }
    assert Notifier.from_env(for_another).watchdog_interval is None
    mine = {
        "NOTIFY_SOCKET": listener.address,
        "WATCHDOG_USEC": "3000000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    assert Notifier.from_env(mine).watchdog_interval == 1.5


def test_without_systemd_everything_is_a_quiet_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready()
    assert not notifier.stopping()

    async def no_watchdog() -> None:
        assert notifier.start_watchdog() is None
        await asyncio.wait_for(notifier.watchdog_loop(), 1)  # returns at once

    asyncio.run(no_watchdog())


def test_a_vanished_socket_is_reported_once_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens.sock"))
    assert not notifier.ready()
    assert not notifier.watchdog()
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1


class LoopThread:
    """An asyncio loop on its own thread running the notifier's watchdog task."""

    def __init__(self, notifier: Notifier) -> None:
        self.loop = asyncio.new_event_loop()
        self.notifier = notifier
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            task = self.notifier.start_watchdog()
            assert task is not None
            self.started.set()
            await task

        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(main())

    def start(self) -> LoopThread:
        self.thread.start()
        assert self.started.wait(10)
        return self

    def block(self, release: threading.Event) -> threading.Event:
        """Run a blocking call on the loop (a stuck loop); returns when it has begun."""
        begun = threading.Event()

        def stuck() -> None:
            begun.set()
            release.wait(30)

        self.loop.call_soon_threadsafe(stuck)
        assert begun.wait(10)
        return begun

    def stop(self) -> None:
        def cancel_all() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()

        self.loop.call_soon_threadsafe(cancel_all)
        self.thread.join(10)
        self.loop.close()


def test_watchdog_pings_at_half_the_configured_timeout(listener: NotifyListener) -> None:
    timeout = 0.6  # WatchdogSec=600ms
    notifier = Notifier(listener.address, watchdog_usec=int(timeout * 1_000_000))
    loop = LoopThread(notifier).start()
    try:
        times = [listener.expect("WATCHDOG=1", 10)[0] for _ in range(6)]
    finally:
        loop.stop()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Never faster than asked (with the loop clock's slack), and always inside systemd's limit.
    assert min(gaps) >= 0.8 * timeout / 2, gaps
    assert max(gaps) < timeout, gaps


def test_watchdog_pings_stop_while_the_event_loop_is_blocked(listener: NotifyListener) -> None:
    timeout = 0.4
    notifier = Notifier(listener.address, watchdog_usec=int(timeout * 1_000_000))
    loop = LoopThread(notifier).start()
    release = threading.Event()
    try:
        listener.expect("WATCHDOG=1", 10)
        loop.block(release)
        # A ping already in the socket buffer may still arrive; after that, silence.
        while listener.receive(timeout / 2 + 0.2) is not None:
            pass
        assert listener.receive(3 * timeout) is None, "a blocked loop must not ping"
        release.set()
        listener.expect("WATCHDOG=1", 10)  # the loop runs again: so do the pings
    finally:
        release.set()
        loop.stop()


# -- against the real gateway process (once the lead's wiring lands) --------------------------


def test_gateway_process_notifies_ready_watchdog_and_stopping(
    tmp_path: Path, listener: NotifyListener
) -> None:
    control = tmp_path / "control.sock"
    config = write_config(
        tmp_path / "tidegate.yaml",
        f"""
gateway: {{id: notify, data_dir: {tmp_path / "data"}}}
control: {{socket: {control}}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: 20}}]
""",
    )
    gateway = GatewayProcess(
        config,
        tmp_path / "gw.log",
        env={"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "500000"},
    ).start()
    try:
        _, ready = listener.expect("READY=1", 30, gateway.process)
        assert "STATUS=" in ready
        # READY means serving: the outbox is open and the control socket listens.
        assert (tmp_path / "data" / "outbox.db").exists()
        assert control.exists()
        pings = [listener.expect("WATCHDOG=1", 5)[0] for _ in range(4)]
        assert max(b - a for a, b in itertools.pairwise(pings)) < 0.5
        gateway.signal(signal.SIGTERM)
        listener.expect("STOPPING=1", 10)
        assert gateway.wait(20) == 0
    finally:
        gateway.kill()
    wait_until(lambda: not control.exists(), 5, "the control socket removed at exit")
