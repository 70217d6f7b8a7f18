"""The modbus driver against pymodbus's own server: on a real loopback TCP socket and,
for RTU, on real pseudo-terminals. Several slaves on one bus, exception replies
counted by name, a silent slave going stale while the other keeps producing,
damaged frames, reconnecting, and writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from tests.drivers.harness import Probe, eventually, running
from tests.drivers.modbus.servers import PtyLink, Served, TcpServed, rtu_server, tcp_server
from tidegate.driver import DriverState
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.driver import ModbusDriver, NotConnected
from tidegate.drivers.modbus.exceptions import (
    ExceptionReply,
    ReadOnlyRegister,
    UnknownRegister,
    ValueOutOfRange,
)

METER_REGISTERS: list[dict[str, Any]] = [
    {"name": "temperature", "address": 0, "type": "i16", "scale": 0.1, "unit": "°C"},
    {"name": "power", "address": 1, "type": "f32", "unit": "W"},
    {"name": "setpoint", "address": 3, "type": "u16", "scale": 0.5},
    {"name": "relay", "table": "coil", "address": 2},
]
METER = {"name": "meter", "slave": 1, "registers": METER_REGISTERS}
PUMP = {
    "name": "pump",
    "slave": 2,
    "registers": [
        {"name": "hours", "table": "input", "address": 4, "type": "u32", "word_order": "little"},
        {"name": "running", "table": "discrete", "address": 0},
    ],
}


def slaves() -> tuple[Served, Served]:
    meter, pump = Served(1), Served(2)
    meter.holding[0:4] = [0xFF29, 0x4366, 0x0000, 42]  # -21.5 °C, 230.0 W, setpoint 21
    meter.coils[2] = True
    pump.input[4:6] = [0x5678, 0x1234]  # 0x12345678 h, low word first
    pump.discrete[0] = True
    return meter, pump


def config(where: dict[str, Any], **more: Any) -> ModbusConfig:
    return ModbusConfig.model_validate(
        {
            "name": "bus",
            **where,
            "interval": 0.05,
            "timeout": 0.2,
            "retries": 0,
            "reconnect": {"initial_delay": 0.02, "max_delay": 0.1},
            "devices": [METER, PUMP],
            **more,
        }
    )


@asynccontextmanager
async def on_bus(
    transport: str, served: tuple[Served, ...], probe: Probe, **more: Any
) -> AsyncIterator[tuple[ModbusDriver, TcpServed | PtyLink]]:
    """The driver polling ``served`` over ``transport`` until the block ends."""
    server: AbstractAsyncContextManager[TcpServed | PtyLink]
    server = tcp_server(served) if transport == "tcp" else rtu_server(served)
    async with server as bus:
        where = (
            {"host": bus.host, "tcp_port": bus.port}
            if isinstance(bus, TcpServed)
            else {"port": bus.driver_path, "baudrate": 115200}
        )
        driver = ModbusDriver(config(where, **more), probe.context)
        async with running(driver, probe):
            yield driver, bus


def latest(probe: Probe, device: str) -> dict[str, Any]:
    """The last value of each of ``device``'s registers, by register name (its events
    are named ``<device>.<register>``)."""
    found: dict[str, Any] = {}
    for event in probe.events:
        if event.tags == {"device": device}:
            register = event.name.removeprefix(device + ".")
            assert register != event.name, f"{event.name!r} is not named after {device!r}"
            found[register] = event.value
    return found


async def batches_from(probe: Probe, device: str, n: int) -> None:
    await eventually(
        lambda: sum(1 for b in probe.batches if b[0].tags == {"device": device}) >= n,
        f"{n} batches from {device}",
    )


TRANSPORTS = ["tcp", "rtu"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_polls_several_slaves_on_one_bus(transport: str) -> None:
    async def scenario() -> None:
        probe = Probe()
        meter, pump = slaves()
        async with on_bus(transport, (meter, pump), probe) as (driver, _):
            await batches_from(probe, "meter", 2)
            await batches_from(probe, "pump", 2)
            assert latest(probe, "meter") == {
                "temperature": -21.5, "power": 230.0, "setpoint": 21, "relay": True
            }
            assert latest(probe, "pump") == {"hours": 0x12345678, "running": True}
            units = {e.name: e.unit for e in probe.events}
            assert (units["meter.temperature"], units["meter.power"], units["pump.hours"]) == (
                "°C", "W", None
            )
            assert {e.source for e in probe.events} == {"bus"}
            # The meter's three holding registers are one read, its coil another.
            meter_batches = sum(1 for b in probe.batches if b[0].tags == {"device": "meter"})
            assert 2 * meter_batches <= meter.requests <= 2 * meter_batches + 2
            # What the device measures changes: the next poll says so.
            meter.set_words("holding", 0, [215])
            await eventually(lambda: latest(probe, "meter")["temperature"] == 21.5, "21.5 °C")
            assert driver.health.state is DriverState.RUNNING
            assert (driver.health.errors, probe.rejects) == (0, [])
            assert driver.health.events == len(probe.events)
            assert not driver.health.device("meter").stale
            assert not driver.health.device("pump").stale

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_exception_reply_is_counted_by_name_and_kept_as_a_dead_letter(transport: str) -> None:
    async def scenario() -> None:
        probe = Probe()
        meter, pump = slaves()
        async with on_bus(transport, (meter, pump), probe) as (driver, _):
            await batches_from(probe, "pump", 1)
            pump.refuse_next = ExcCodes.DEVICE_BUSY
            await eventually(lambda: len(probe.rejects) == 1, "the exception reply")
            before = len(probe.events)
            await eventually(lambda: len(probe.events) > before + 4, "polling going on")
        ((raw, reason),) = probe.rejects
        function = 4 if raw[0] == 0x84 else 2  # the input registers or the discrete input
        assert raw[:2] == bytes([0x80 | function, 6])  # the exception PDU, then the request
        assert raw[2] == function and len(raw) == 7
        assert "device 'pump' (slave 2)" in reason and "exception 6 (device_busy)" in reason
        assert driver.health.counters == {"device_busy": 1}
        assert driver.health.errors == 1 and driver.health.last_error == reason
        assert not driver.health.device("pump").stale  # it answered: it is there
        assert driver.health.device("pump").last_error == "device_busy"

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_silent_slave_goes_stale_while_the_other_keeps_producing(transport: str) -> None:
    async def scenario() -> None:
        probe = Probe()
        meter, pump = slaves()
        async with on_bus(transport, (meter, pump), probe) as (driver, _):
            await batches_from(probe, "pump", 1)
            pump.silent = True
            await eventually(lambda: driver.health.device("pump").stale, "the pump stale")
            # While it stays silent, it is asked again at its interval, and the meter
            # keeps producing.
            asked = pump.requests
            meter_events = len(latest_events(probe, "meter"))
            await eventually(lambda: pump.requests >= asked + 3, "the pump asked again")
            await eventually(
                lambda: len(latest_events(probe, "meter")) >= meter_events + 8,
                "the meter's readings meanwhile",
            )
            assert driver.health.counters["timeout"] >= 3
            assert driver.health.errors == 1  # one error when it went stale, not one a poll
            assert driver.health.device("pump").last_error == "timeout"
            assert driver.health.state is DriverState.RUNNING
            assert not driver.health.device("meter").stale
            # It answers again: fresh, and its readings are back.
            pump_batches = len([b for b in probe.batches if b[0].tags == {"device": "pump"}])
            pump.silent = False
            await eventually(lambda: not driver.health.device("pump").stale, "the pump back")
            await batches_from(probe, "pump", pump_batches + 1)
        assert probe.rejects == []

    asyncio.run(scenario())


def latest_events(probe: Probe, device: str) -> list[Any]:
    return [e for e in probe.events if e.tags == {"device": device}]


def test_a_damaged_rtu_reply_is_counted_and_the_retry_reads_it() -> None:
    async def scenario() -> None:
        probe = Probe()
        meter, pump = slaves()
        async with on_bus("rtu", (meter, pump), probe, retries=1) as (driver, link):
            assert isinstance(link, PtyLink)
            await batches_from(probe, "meter", 1)
            link.damage_next = True
            await eventually(lambda: len(probe.rejects) == 1, "the damaged reply")
            before = len(probe.events)
            await eventually(lambda: len(probe.events) > before + 4, "polling going on")
        ((raw, reason),) = probe.rejects
        assert [raw] == link.damaged
        assert "a reply that is not a Modbus frame (bad_crc)" in reason
        assert driver.health.counters == {"bad_crc": 1}
        assert not driver.health.device("meter").stale and not driver.health.device("pump").stale

    asyncio.run(scenario())


def test_a_value_that_is_not_a_number_is_rejected_and_its_neighbours_publish() -> None:
    async def scenario() -> None:
        probe = Probe()
        meter, pump = slaves()
        meter.holding[1:3] = [0x7FC0, 0x0000]  # f32 NaN
        async with on_bus("tcp", (meter, pump), probe) as (driver, _):
            await eventually(lambda: len(probe.rejects) >= 1, "the NaN")
            await batches_from(probe, "meter", 1)
            assert "power" not in latest(probe, "meter")
            assert latest(probe, "meter")["temperature"] == -21.5
        raw, reason = probe.rejects[0]
        assert raw == b"\x7f\xc0\x00\x00"
        assert reason == "device 'meter': register 'power': nan is not a number"
        assert driver.health.errors == len(probe.rejects)

    asyncio.run(scenario())


def test_reconnects_when_the_tcp_server_comes_back() -> None:
    async def scenario() -> None:
        probe = Probe()
        meter, pump = slaves()
        async with tcp_server((meter, pump)) as first:
            where = {"host": first.host, "tcp_port": first.port}
            driver = ModbusDriver(config(where), probe.context)
            async with running(driver, probe):
                await batches_from(probe, "meter", 1)
                await first.stop()
                await eventually(
                    lambda: driver.health.state is DriverState.RECONNECTING, "reconnecting"
                )
                assert driver.health.last_error is not None
                with pytest.raises(NotConnected, match="the bus is not connected"):
                    await driver.write("meter", "setpoint", 20)
                async with tcp_server((meter, pump), port=first.port):
                    before = len(probe.events)
                    await eventually(lambda: len(probe.events) > before + 2, "readings again")
                    assert driver.health.state is DriverState.RUNNING
                assert driver.connects >= 2

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_writes_registers_and_coils(transport: str) -> None:
    async def scenario() -> None:
        probe = Probe()
        meter, pump = slaves()
        more = {"devices": [
            {**METER, "registers": [*METER_REGISTERS,
                                    {"name": "limit", "address": 8, "type": "f32"},
                                    {"name": "label", "address": 10, "type": "string",
                                     "length": 2}]},
            PUMP]}
        async with on_bus(transport, (meter, pump), probe, **more) as (driver, _):
            await batches_from(probe, "meter", 1)
            await driver.write("meter", "setpoint", 22.5)  # FC6: raw 45 (scale 0.5)
            await driver.write("meter", "limit", 1.0)  # FC16: two registers
            await driver.write("meter", "label", "AB")  # FC16: NUL-padded
            await driver.write("meter", "relay", False)  # FC5
            assert meter.words("holding", 3, 1) == [45]
            assert meter.words("holding", 8, 4) == [0x3F80, 0x0000, 0x4142, 0x0000]
            assert meter.bits("coil", 2, 1) == [False]
            await eventually(
                lambda: latest(probe, "meter").get("setpoint") == 22.5
                and latest(probe, "meter").get("relay") is False,
                "the new values read back",
            )
            # Refused before anything is sent.
            written = meter.writes + pump.writes
            with pytest.raises(ReadOnlyRegister, match=r"pump\.hours is an input register"):
                await driver.write("pump", "hours", 1)
            with pytest.raises(ReadOnlyRegister, match=r"pump\.running is a discrete input"):
                await driver.write("pump", "running", True)
            with pytest.raises(ValueOutOfRange, match=r"outside u16's 0\.\.65535"):
                await driver.write("meter", "setpoint", 40000)
            with pytest.raises(UnknownRegister, match="no register 'volume'"):
                await driver.write("meter", "volume", 1)
            unknown = r"no device 'boiler' \(devices: meter, pump\)"
            with pytest.raises(UnknownRegister, match=unknown):
                await driver.write("boiler", "setpoint", 1)
            assert meter.writes + pump.writes == written
            assert meter.words("holding", 3, 1) == [45]
            # The device refuses: the caller hears it, and it is counted like a read's.
            meter.refuse_next_write = ExcCodes.ILLEGAL_VALUE
            with pytest.raises(ExceptionReply, match="exception 3 \\(illegal_data_value\\)"):
                await driver.write("meter", "setpoint", 23)
            assert driver.health.counters.get("illegal_data_value") == 1

    asyncio.run(scenario())
