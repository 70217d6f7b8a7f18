"""What every driver kind promises, checked on every registered kind.

Each kind runs against a real device: ``sim`` on its own, ``serial`` on a real
pseudo-terminal, ``gpio`` on the simulated chip, ``mqtt`` on a real Mosquitto.
Every kind:

- stops cleanly when cancelled, also while ``emit`` holds it (backpressure);
- keeps its health counters: the events it emitted, its state;
- hands bad input to its context's ``reject`` with a reason, counts it as an
  error, and goes on reading;
- does no I/O in its constructor: built for a port that does not exist or a
  broker that is not there, it raises nothing and opens nothing; run, it
  reports that it is reconnecting instead of failing.

A kind registered without a case here fails these tests: add its case.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sys
import threading
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import aiomqtt
import pytest
from pydantic import TypeAdapter

from tests.drivers.devices import gpio_on, sim_for
from tests.drivers.harness import Probe, eventually, running
from tests.drivers.i2c.conformance_case import absent_i2c, live_i2c
from tests.drivers.modbus.conformance_case import absent_modbus, live_modbus
from tests.drivers.onewire.conformance_case import absent_onewire, live_onewire
from tidegate.demo.local_broker import LocalBroker, free_port
from tidegate.driver import Driver, DriverState
from tidegate.driver_kinds import driver_types
from tidegate.drivers.gpio.sim import SimChip
from tidegate.drivers.gpio.timelines import MS, press

Feed = Callable[[], Awaitable[None]]


@dataclass
class Live:
    """A driver on a device that is there, and how to make that device talk."""

    driver: Driver
    feed: Feed
    """Input that becomes at least one event."""
    garbage: Feed | str
    """Input the driver must reject; or why the kind has none."""


def build(kind: str, config: dict[str, Any], probe: Probe) -> Driver:
    """A driver as the pipeline builds one: from its kind, on a validated config."""
    model = driver_types()[kind]
    validated = TypeAdapter(model.config_type).validate_python({"type": kind, **config})
    return model(validated, probe.context)


async def until_running(driver: Driver) -> None:
    await eventually(lambda: driver.health.state is DriverState.RUNNING, f"{driver.name} running")


# --- one case per kind ------------------------------------------------------------------


@asynccontextmanager
async def live_sim(request: pytest.FixtureRequest, probe: Probe) -> AsyncIterator[Live]:
    config = {"name": "sim", "seed": 1, "signals": [{"name": "n", "kind": "counter", "rate": 500}]}

    async def nothing_to_do() -> None:
        """The simulated signals produce events by themselves."""

    yield Live(
        build("sim", config, probe),
        nothing_to_do,
        "sim generates its own values: it reads no input that could be bad",
    )


@asynccontextmanager
async def live_serial(request: pytest.FixtureRequest, probe: Probe) -> AsyncIterator[Live]:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    with sim_for(tmp_path, framing={"type": "line"},
                 parse={"format": "kv", "fields": {"T": {}}}) as device:
        config = {
            "name": "serial",
            "port": device.path,
            "framing": {"type": "line"},
            "parse": {"format": "kv", "fields": {"T": {}}},
        }
        driver = build("serial", config, probe)

        async def reading() -> None:
            await until_running(driver)
            device.write_frame({"T": 21.5})

        async def garbage() -> None:
            await until_running(driver)
            device.write_bytes(b"T=oops\n")

        yield Live(driver, reading, garbage)


@asynccontextmanager
async def live_gpio(request: pytest.FixtureRequest, probe: Probe) -> AsyncIterator[Live]:
    chip = SimChip()
    driver = gpio_on(chip, probe.context, name="gpio", edge="both")

    async def presses() -> None:
        await until_running(driver)
        end = chip.play(4, press(bounces=0))
        assert end is not None
        chip.run_until(end + 100 * MS)

    yield Live(driver, presses, "a GPIO line has no malformed input: every edge is a reading")


@asynccontextmanager
async def live_mqtt(request: pytest.FixtureRequest, probe: Probe) -> AsyncIterator[Live]:
    broker: LocalBroker = request.getfixturevalue("broker")
    config = {
        "name": "mqtt",
        "port": broker.port,
        "reconnect": {"initial_delay": "50ms", "max_delay": "500ms"},
        "subscriptions": [{"topic": "dev/+", "parse": {"format": "json", "fields": {"t": {}}}}],
    }
    driver = build("mqtt", config, probe)

    async def publish(payload: bytes) -> None:
        await until_running(driver)
        async with aiomqtt.Client(broker.host, broker.port) as device:
            await device.publish("dev/a", payload, qos=1)

    async def reading() -> None:
        await publish(b'{"t": 21.5}')

    async def garbage() -> None:
        await publish(b"{not json")

    yield Live(driver, reading, garbage)


CASES: dict[str, Callable[[pytest.FixtureRequest, Probe], AbstractAsyncContextManager[Live]]] = {
    "sim": live_sim,
    "serial": live_serial,
    "gpio": live_gpio,
    "mqtt": live_mqtt,
    "modbus": live_modbus,
    "onewire": live_onewire,
    "i2c": live_i2c,
}

KINDS = sorted(driver_types())


def case(kind: str) -> Callable[[pytest.FixtureRequest, Probe], AbstractAsyncContextManager[Live]]:
    found = CASES.get(kind)
    if found is None:
        pytest.fail(f"driver kind {kind!r} has no conformance case: add one to {__name__}")
    return found


# --- the promises -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_stops_cleanly_on_cancel_even_while_emit_holds_it(
    kind: str, request: pytest.FixtureRequest
) -> None:
    async def scenario() -> None:
        probe = Probe()
        probe.gate = asyncio.Event()  # the pipeline's queue is full
        async with case(kind)(request, probe) as live, running(live.driver, probe):
            await live.feed()
            await eventually(lambda: probe.blocked == 1, "a batch held in emit")
            # Leaving running() cancels it with the batch still held: it must stop.
        assert probe.batches == []

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", KINDS)
def test_keeps_its_health_counters(kind: str, request: pytest.FixtureRequest) -> None:
    async def scenario() -> None:
        probe = Probe()
        async with case(kind)(request, probe) as live:
            driver = live.driver
            assert (driver.health.state, driver.health.events) == (DriverState.STARTING, 0)
            async with running(driver, probe):
                await live.feed()
                await probe.wait_for_events(1)
                assert driver.health.state is DriverState.RUNNING
                assert driver.health.events == len(probe.events)
                assert driver.health.last_event_monotonic is not None
                assert (driver.health.errors, driver.health.last_error) == (0, None)
            assert driver.health.events == len(probe.events)
        assert {e.source for e in probe.events} == {kind}

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", KINDS)
def test_sends_bad_input_to_reject_and_reads_on(kind: str, request: pytest.FixtureRequest) -> None:
    async def scenario() -> None:
        probe = Probe()
        async with case(kind)(request, probe) as live:
            if isinstance(live.garbage, str):
                pytest.skip(live.garbage)
            driver = live.driver
            async with running(driver, probe):
                await live.garbage()
                await eventually(lambda: len(probe.rejects) == 1, "the rejected input")
                await live.feed()
                await probe.wait_for_events(1)
                assert driver.health.errors == 1
                assert driver.health.last_error == probe.reasons()[0]
                assert driver.health.state is DriverState.RUNNING
        ((raw, reason),) = probe.rejects
        assert raw and reason

    asyncio.run(scenario())


# --- no I/O in the constructor ---------------------------------------------------------


class MissingChip(types.ModuleType):
    """libgpiod's bindings (a stand-in: they are an optional extra) on a board whose
    chip is missing; it notes every attempt to open one."""

    def __init__(self) -> None:
        super().__init__("gpiod")
        self.opened: list[str] = []

    def Chip(self, path: str) -> NoReturn:
        self.opened.append(path)
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)


def absent_device(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A config of ``kind`` whose device is not there."""
    if kind == "sim":
        return {"name": "sim", "signals": [{"name": "n", "kind": "counter", "rate": 1}]}
    if kind == "serial":
        return {"name": "serial", "port": str(tmp_path / "by-id" / "unplugged"),
                "parse": {"format": "raw"}, "reconnect": {"initial_delay": "10ms"}}
    if kind == "gpio":
        monkeypatch.setitem(sys.modules, "gpiod", MissingChip())
        return {"name": "gpio", "backend": "gpiod", "chip": "gpiochip77", "line": 4,
                "reconnect": {"initial_delay": "10ms"}}
    if kind == "mqtt":
        return {"name": "mqtt", "port": free_port(), "reconnect": {"initial_delay": "10ms"},
                "subscriptions": [{"topic": "dev/+", "parse": {"format": "raw"}}]}
    if kind == "i2c":
        return absent_i2c(tmp_path)
    if kind == "modbus":
        return absent_modbus()
    if kind == "onewire":
        return absent_onewire(tmp_path)
    pytest.fail(f"driver kind {kind!r} has no absent-device config: add one to {__name__}")


def open_files() -> set[str]:
    """What this process has open: files, ttys, sockets."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_constructor_does_no_io(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = absent_device(kind, tmp_path, monkeypatch)
    probe = Probe()
    files, threads = open_files(), set(threading.enumerate())
    driver = build(kind, config, probe)
    assert open_files() == files
    # No thread started (one an earlier test left may end meanwhile: not counted).
    assert set(threading.enumerate()) - threads == set()
    gpiod = sys.modules.get("gpiod")
    assert not isinstance(gpiod, MissingChip) or gpiod.opened == []
    assert driver.health.state is DriverState.STARTING

    async def scenario() -> None:
        async with running(driver, probe):
            if kind == "sim":
                await until_running(driver)
            else:
                await eventually(
                    lambda: driver.health.state is DriverState.RECONNECTING, "reconnecting"
                )
                assert driver.health.errors >= 1 and driver.health.last_error

    asyncio.run(scenario())
    assert probe.rejects == []
