"""The control API: a real Unix socket served beside a real in-process Gateway,
and (once wired) `tidegate status|tail|reload` against a real gateway process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import write_config
from tidegate.config.loader import load_config, load_config_text
from tidegate.errors import ConfigError
from tidegate.event import new_event
from tidegate.ops.control_client import ControlClient, ControlError, GatewayNotRunning
from tidegate.ops.control_server import SOCKET_MODE, ControlServer
from tidegate.ops.reload import ReloadOutcome
from tidegate.ops.sdnotify import Notifier
from tidegate.ops.status import GatewayMonitor, render_status
from tidegate.ops.tap import EventTap
from tidegate.outgoing import Outgoing
from tidegate.pipeline import Gateway

SIM_CONFIG = """
gateway: {{id: ctl, data_dir: {data}}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: 200}}, {{name: t, kind: sine, rate: 50}}]
"""


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_gateway(tmp_path: Path, text: str | None = None) -> AsyncIterator[Gateway]:
    """A real Gateway built from a config, running on this loop until the block ends."""
    config = load_config_text(text or SIM_CONFIG.format(data=tmp_path / "data"), "test.yaml")
    gateway = Gateway(config)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    ready = asyncio.ensure_future(gateway.ready.wait())
    await asyncio.wait({ready, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # it failed to start: say why
    assert gateway.ready.is_set()
    try:
        yield gateway
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def serving(
    path: Path, gateway: Gateway, tap: EventTap | None = None, **options: Any
) -> AsyncIterator[ControlServer]:
    server = ControlServer(path, GatewayMonitor(gateway), tap or EventTap(), **options)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def routed(source: str, name: str, value: float) -> Outgoing:
    return Outgoing(new_event(source, name, value), f"t/{source}/{name}", 1, False)


# -- status ---------------------------------------------------------------------------------


def test_status_over_the_socket_reports_the_running_gateway(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    async def body() -> None:
        async with running_gateway(tmp_path) as gateway, serving(path, gateway):
            client = ControlClient(path)
            await until(lambda: gateway.outbox.stats.accepted >= 50, 20, "50 accepted events")
            doc = await asyncio.to_thread(client.status)
            assert doc["gateway"] == "ctl"
            assert doc["pid"] == os.getpid()
            assert doc["uptime_s"] >= 0
            [driver] = doc["drivers"]
            assert driver["name"] == "alpha" and driver["type"] == "sim"
            assert driver["state"] == "running"
            assert driver["events"] > 0 and driver["last_event_age_s"] is not None
            assert [r["name"] for r in doc["rules"]] == ["(default)"]
            outbox = doc["outbox"]
            assert outbox["accepted"] >= 50 and outbox["depth"] == outbox["accepted"]
            assert outbox["bytes"] > 0
            assert outbox["oldest_age_s"] is not None and outbox["oldest_age_s"] >= 0
            assert outbox["dropped"] == {}
            # Nothing pending, lost or stuck in a healthy start (issue 9's fields).
            assert outbox["dropped_pending"] == {}
            assert outbox["lost_in_recovery"] == 0 and outbox["recovery"] is None
            assert outbox["delete_pending"] == 0
            assert doc["pipeline"]["memory_drops"] == 0
            assert doc["broker"] == {"configured": False}
            assert set(doc["rates"]) >= {"window_s", "events_in", "accepted", "delivered"}
            text = render_status(doc)
            assert "alpha" in text and "running" in text and "(default)" in text
            json.dumps(doc)  # plain JSON data

    asyncio.run(body())


def test_rates_cover_the_last_minute_of_samples(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_gateway(tmp_path) as gateway:
            monitor = GatewayMonitor(gateway)
            sampler = asyncio.create_task(monitor.run())
            try:
                start = gateway.stats.events_in
                await until(lambda: len(monitor.window._samples) >= 3, 10, "three samples")
                rates = monitor.document()["rates"]
            finally:
                sampler.cancel()
            assert 1.5 <= rates["window_s"] <= 61
            # 250 events/s configured; any honest average over two seconds is far from 0.
            assert rates["events_in"] > 50, rates
            assert gateway.stats.events_in > start

    asyncio.run(body())


# -- the socket ------------------------------------------------------------------------------


def test_socket_is_owner_and_group_only_and_removed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "run" / "tidegate" / "control.sock"

    async def body() -> None:
        async with running_gateway(tmp_path) as gateway:
            async with serving(path, gateway):
                mode = path.stat().st_mode
                assert stat.S_ISSOCK(mode)
                assert stat.S_IMODE(mode) == SOCKET_MODE == 0o660
                assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
            assert not path.exists()

    asyncio.run(body())


def test_a_stale_socket_is_replaced_and_a_live_one_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    # What a gateway killed with -9 leaves behind: a socket file nobody listens on.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()

    async def body() -> None:
        async with running_gateway(tmp_path) as gateway, serving(path, gateway):
            assert (await asyncio.to_thread(ControlClient(path).status))["gateway"] == "ctl"
            second = ControlServer(path, GatewayMonitor(gateway), EventTap())
            with pytest.raises(ControlError, match="another gateway is already serving"):
                await second.start()
            # The default location only warns: a second gateway on a laptop still runs.
            assert not await ControlServer(
                path, GatewayMonitor(gateway), EventTap(), required=False
            ).start()
            assert (await asyncio.to_thread(ControlClient(path).status))["gateway"] == "ctl"

    asyncio.run(body())


def test_a_socket_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")

    async def body() -> None:
        async with running_gateway(tmp_path) as gateway:
            server = ControlServer(blocker / "control.sock", GatewayMonitor(gateway), EventTap())
            with pytest.raises(ControlError) as caught:
                await server.start()
            assert "\n" not in str(caught.value)
            assert str(blocker / "control.sock") in str(caught.value)

    asyncio.run(body())


def test_client_says_no_gateway_is_running(tmp_path: Path) -> None:
    with pytest.raises(GatewayNotRunning, match="no gateway is running"):
        ControlClient(tmp_path / "control.sock").status()


def test_bad_requests_get_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    def raw(request: bytes) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(request)
            reply: dict[str, Any] = json.loads(sock.makefile("rb").readline())
            return reply

    async def body() -> None:
        async with running_gateway(tmp_path) as gateway, serving(path, gateway):
            garbage = await asyncio.to_thread(raw, b"hello\n")
            assert garbage == {"ok": False, "error": "a request is a JSON object with 'op'"}
            unknown = await asyncio.to_thread(raw, b'{"op": "restart"}\n')
            assert unknown["ok"] is False and "known: status, tail, reload" in unknown["error"]
            huge = await asyncio.to_thread(raw, b'{"op": "' + b"x" * 100_000 + b'"}\n')
            assert huge == {"ok": False, "error": "request too long"}
            with pytest.raises(ControlError, match="unknown request"):
                await asyncio.to_thread(ControlClient(path).request, {"op": "nope"})

    asyncio.run(body())


# -- reload ---------------------------------------------------------------------------------


def test_reload_reports_the_outcome_and_tells_systemd(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    config_file = write_config(tmp_path / "tidegate.yaml", SIM_CONFIG.format(data=tmp_path / "d"))
    notify_path = tmp_path / "notify.sock"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(notify_path))
    systemd.settimeout(10)
    calls: list[str] = []

    async def reload() -> ReloadOutcome:
        # Stands in for the lead's reload (cli.py): revalidate the file, report.
        calls.append("reload")
        try:
            new = await asyncio.to_thread(load_config, config_file)
        except ConfigError as exc:
            return ReloadOutcome(
                False, "invalid; the running configuration stays", tuple(exc.messages)
            )
        return ReloadOutcome(True, f"{len(new.rules)} rules")

    async def body() -> None:
        notifier = Notifier(str(notify_path))
        async with (
            running_gateway(tmp_path) as gateway,
            serving(path, gateway, reload=reload, notifier=notifier),
        ):
            client = ControlClient(path)
            assert await asyncio.to_thread(client.reload) == ReloadOutcome(True, "0 rules")
            config_file.write_text("drivers: [{name: x, type: sim, signals: []}]\nbogus: 1\n")
            refused = await asyncio.to_thread(client.reload)
            assert not refused.ok
            assert any("tidegate.yaml:2:1" in line and "bogus" in line for line in refused.details)
        notifier.close()

    asyncio.run(body())
    assert calls == ["reload", "reload"]
    messages = [systemd.recv(4096).decode() for _ in range(6)]
    systemd.close()
    expected = ["RELOADING=1", "READY=1", "STATUS=last reload: ok"]
    expected += ["RELOADING=1", "READY=1", "STATUS=last reload: refused"]
    assert [m.split("\n")[0] for m in messages] == expected


def test_reload_without_a_handler_or_with_a_failing_one(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    async def broken() -> ReloadOutcome:
        raise RuntimeError("the rule engine fell over")

    async def body() -> None:
        async with running_gateway(tmp_path) as gateway:
            async with serving(path, gateway):
                outcome = await asyncio.to_thread(ControlClient(path).reload)
                assert outcome == ReloadOutcome(
                    False, "this gateway cannot reload its configuration"
                )
            async with serving(path, gateway, reload=broken):
                outcome = await asyncio.to_thread(ControlClient(path).reload)
                assert not outcome.ok
                assert outcome.summary == "RuntimeError: the rule engine fell over"
                # and the gateway still serves
                assert (await asyncio.to_thread(ControlClient(path).status))["gateway"] == "ctl"

    asyncio.run(body())


# -- tail -----------------------------------------------------------------------------------


def test_tail_streams_matching_events_and_counts_what_a_slow_client_missed(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    tap = EventTap()

    async def body() -> None:
        async with (
            running_gateway(tmp_path) as gateway,
            serving(path, gateway, tap=tap, tail_buffer=10),
        ):
            stream = ControlClient(path).tail(source="green*", name="t*")
            first_lines = asyncio.create_task(asyncio.to_thread(list, itertools.islice(stream, 11)))
            await until(lambda: tap.listeners == 1, 10, "the tail to subscribe")
            # One pipeline batch: 100 matching events (only 10 fit the client's queue) and
            # events of other sources and names the globs leave out.
            batch = [routed("greenhouse", "temperature", float(i)) for i in range(100)]
            batch += [routed("workshop", "temperature", 1.0), routed("greenhouse", "humidity", 2.0)]
            tap.publish(batch)
            lines = await asyncio.wait_for(first_lines, 10)
            events = [line["event"] for line in lines if "event" in line]
            assert [e["value"] for e in events] == [float(i) for i in range(10)]
            assert {(e["source"], e["name"]) for e in events} == {("greenhouse", "temperature")}
            assert events[0]["topic"] == "t/greenhouse/temperature" and "id" in events[0]
            assert lines[-1] == {"dropped": 90}
            # The pipeline is never held up: publish returned at once, the rest was dropped.
            tap.publish([routed("greenhouse", "temp2", 7.0)])
            later = await asyncio.wait_for(asyncio.to_thread(next, stream), 10)
            assert later["event"]["value"] == 7.0
            stream.close()  # the client hangs up ...
            await until(
                lambda: tap.listeners == 0, 10, "the subscription to end"
            )  # ... and is gone

    asyncio.run(body())


def test_tail_ends_with_a_last_line_when_the_gateway_stops(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    tap = EventTap()

    async def body() -> None:
        async with running_gateway(tmp_path) as gateway:
            server = ControlServer(path, GatewayMonitor(gateway), tap)
            await server.start()
            stream = ControlClient(path).tail()
            rest = asyncio.create_task(asyncio.to_thread(list, stream))
            await until(lambda: tap.listeners == 1, 10, "the tail to subscribe")
            await server.close()
            assert await asyncio.wait_for(rest, 10) == [{"end": "the gateway is stopping"}]
            assert tap.listeners == 0

    asyncio.run(body())


def test_tap_is_free_without_listeners_and_bounded_with_them() -> None:
    tap = EventTap()
    assert not tap.active
    subscription = tap.subscribe("*", "*", capacity=3)
    assert tap.active
    tap.publish([routed("a", "b", float(i)) for i in range(5)])
    assert subscription.dropped == 2 and tap.dropped == 2
    tap.unsubscribe(subscription)
    assert not tap.active
