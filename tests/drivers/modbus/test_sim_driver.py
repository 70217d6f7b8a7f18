"""The real ``modbus`` driver on ``port: sim`` / ``host: sim`` with injected faults.

The driver starts the simulated bus itself and polls it with pymodbus's client,
over a real pty (RTU) or a real loopback socket (TCP); the tests reach the
simulated slaves through ``sim_device.running`` to inject exact faults, and see
only what the pipeline sees (``emit``, ``reject``) and the driver's health.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import yaml

from tests.drivers.harness import Probe, eventually, running
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.driver import ModbusDriver
from tidegate.drivers.modbus.exceptions import ValueOutOfRange
from tidegate.drivers.modbus.sim_device import Fault, SimEndpoint
from tidegate.drivers.modbus.sim_device import running as buses
from tidegate.event import Event

BUS = """
name: meters
type: modbus
timeout: 500ms               # generous: a slow test machine must not time out
retries: 0
interval: 30ms
reconnect: {initial_delay: 20ms, max_delay: 100ms}
devices:
  - name: mains
    slave: 1
    registers:
      - {name: voltage, table: input, address: 0, type: f32, unit: V}
      - {name: power, table: input, address: 12, type: f32, word_order: little, unit: W}
      - {name: setpoint, table: holding, address: 40, type: i16, scale: 0.1}
  - name: boiler
    slave: 7
    registers:
      - {name: temperature, address: 0, type: i16, scale: 0.1, unit: "°C"}
      - {name: status, address: 1, type: bitfield, bits: {burner: 0, pump: 1}}
sim:
  seed: 3
  values:
    voltage: 231.5
    power: -1500.25
    setpoint: 20.5
    temperature: 64.2
    status: 2
"""


def config(transport: str, timeout: str | None = None, **changes: Any) -> ModbusConfig:
    data = yaml.safe_load(BUS)
    data[transport] = "sim"
    if timeout is not None:
        data["timeout"] = timeout
    for key, value in changes.items():
        data["sim"][key] = value
    return ModbusConfig.model_validate(data)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


async def endpoint_of(name: str) -> SimEndpoint:
    await eventually(lambda: name in buses, f"the simulated bus of {name!r}")
    return buses[name]


def device_of(event: Event) -> str | None:
    return (event.tags or {}).get("device")


def latest(probe: Probe, name: str, device: str) -> Any:
    values = [
        e.value for e in probe.events if e.name == f"{device}.{name}" and device_of(e) == device
    ]
    return values[-1] if values else None


def count(probe: Probe, device: str) -> int:
    return len([e for e in probe.events if device_of(e) == device])


TRANSPORTS = pytest.mark.parametrize("transport", ["port", "host"])


@TRANSPORTS
def test_the_driver_reads_the_simulated_map(transport: str) -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = ModbusDriver(config(transport), probe.context)
        async with running(driver, probe):
            await eventually(lambda: count(probe, "boiler") >= 3, "three rounds of the boiler")
        assert latest(probe, "voltage", "mains") == 231.5
        assert latest(probe, "power", "mains") == -1500.25  # served word-swapped, read so
        assert latest(probe, "setpoint", "mains") == 20.5
        assert latest(probe, "temperature", "boiler") == 64.2
        assert (latest(probe, "burner", "boiler"), latest(probe, "pump", "boiler")) == (False, True)
        assert probe.rejects == [] and driver.health.counters == {}
        assert buses == {}  # the driver's simulated bus stopped with it

    run(scenario)


@TRANSPORTS
def test_an_exception_reply_is_counted_by_name_and_dead_lettered(transport: str) -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = ModbusDriver(config(transport), probe.context)
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            endpoint.slave("boiler").inject(Fault.EXCEPTION, code=6)
            await eventually(lambda: probe.rejects != [], "a dead letter")
            before = count(probe, "boiler")
            await eventually(lambda: count(probe, "boiler") > before, "the boiler read again")
        assert driver.health.counters == {"device_busy": 1}
        ((raw, reason),) = probe.rejects
        assert raw[:2] == bytes((0x83, 6)) and "device_busy" in reason and "boiler" in reason
        assert not driver.health.devices["boiler"].stale  # an exception is an answer

    run(scenario)


def test_a_bad_crc_on_rtu_is_counted_and_the_device_recovers() -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = ModbusDriver(config("port"), probe.context)
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            endpoint.slave("mains").inject(Fault.BAD_CRC)
            await eventually(lambda: "bad_crc" in driver.health.counters, "bad_crc counted")
            await eventually(
                lambda: not driver.health.devices["mains"].stale, "mains answering again"
            )
            before = count(probe, "mains")
            await eventually(lambda: count(probe, "mains") > before, "mains values again")
        assert driver.health.counters["bad_crc"] == 1
        assert any("bad_crc" in reason for reason in probe.reasons())

    run(scenario)


def test_a_garbled_reply_behind_a_tcp_gateway_is_counted_by_its_exception() -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = ModbusDriver(config("host"), probe.context)
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            endpoint.slave("mains").inject(Fault.BAD_CRC)
            await eventually(
                lambda: "gateway_target_failed" in driver.health.counters, "the 0x0B reply counted"
            )
        assert driver.health.counters == {"gateway_target_failed": 1}

    run(scenario)


@TRANSPORTS
def test_a_silent_slave_goes_stale_while_the_other_is_polled_then_comes_back(
    transport: str,
) -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = ModbusDriver(config(transport), probe.context)
        health = driver.health
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            await eventually(lambda: count(probe, "boiler") >= 1, "a first boiler reading")
            endpoint.slave("boiler").silence()
            await eventually(lambda: health.devices["boiler"].stale, "the boiler stale")
            boiler, mains = count(probe, "boiler"), count(probe, "mains")
            await eventually(lambda: count(probe, "mains") >= mains + 6, "mains read on")
            assert count(probe, "boiler") == boiler  # nothing invented for the silent one
            assert health.devices["boiler"].last_error == "timeout"
            assert not health.devices["mains"].stale

            endpoint.slave("boiler").resume()
            await eventually(lambda: not health.devices["boiler"].stale, "the boiler back")
            await eventually(lambda: count(probe, "boiler") > boiler, "boiler readings again")
        assert health.counters["timeout"] >= 1
        assert set(health.counters) <= {"timeout", "late_polls"}  # late: a loaded machine

    run(scenario)


def test_configured_fault_chances_are_counted_and_the_driver_goes_on() -> None:
    async def scenario() -> None:
        probe = Probe()
        faults = {"timeout": 0.2, "bad_crc": 0.2, "exception": 0.2, "exception_code": 4}
        # Faults are expected here: short timeouts keep the test short.
        driver = ModbusDriver(config("port", "100ms", faults=faults), probe.context)
        counters = driver.health.counters
        async with running(driver, probe):
            await eventually(
                lambda: all(counters.get(name, 0) >= 2 for name in
                            ("timeout", "bad_crc", "device_failure")),
                "every kind of fault, twice",
            )
            before = len(probe.events)
            await eventually(lambda: len(probe.events) > before + 5, "values still coming")
        # Polls fall behind while the bus waits for the silent ones: late_polls.
        assert set(counters) - {"late_polls"} == {"timeout", "bad_crc", "device_failure"}

    run(scenario)


def test_a_silent_every_schedule_makes_a_device_stale_and_fresh_again() -> None:
    async def scenario() -> None:
        probe = Probe()
        schedule = {"boiler": {"silent_every": "300ms", "silent_for": "400ms"}}
        driver = ModbusDriver(config("host", "100ms", device_faults=schedule), probe.context)
        boiler = driver.health.device("boiler")
        async with running(driver, probe):
            await eventually(lambda: boiler.stale, "the boiler's first silence")
            await eventually(lambda: not boiler.stale, "the boiler speaking again")
            await eventually(lambda: boiler.stale, "its second silence")
        assert not driver.health.device("mains").stale

    run(scenario)


@TRANSPORTS
def test_a_write_changes_what_the_device_serves(transport: str) -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = ModbusDriver(config(transport), probe.context)
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            await eventually(lambda: latest(probe, "setpoint", "mains") == 20.5, "the setpoint")
            await driver.write("mains", "setpoint", -3.5)
            assert endpoint.slave("mains").tables.holding[40] == 0x10000 - 35
            await eventually(lambda: latest(probe, "setpoint", "mains") == -3.5, "the new value")

    run(scenario)


@TRANSPORTS
def test_writing_some_bits_of_a_bitfield_keeps_the_others(transport: str) -> None:
    async def scenario() -> None:
        probe = Probe()
        data = yaml.safe_load(BUS)
        data[transport] = "sim"
        data["sim"]["values"]["status"] = 0x8012  # pump on, and bits 4 and 15, unnamed
        driver = ModbusDriver(ModbusConfig.model_validate(data), probe.context)
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            boiler = endpoint.slave("boiler")
            await eventually(lambda: latest(probe, "pump", "boiler") is True, "the pump on")
            assert await driver.write("boiler", "status", {"burner": True}) == {
                "burner": True, "pump": True,
            }
            assert boiler.tables.holding[1] == 0x8013
            await driver.write("boiler", "status", {"pump": False})
            assert boiler.tables.holding[1] == 0x8011
            await eventually(lambda: latest(probe, "pump", "boiler") is False, "the pump off")
            # The whole integer still sets every bit; the value comes back as it reads.
            await driver.write("boiler", "status", 2)
            assert boiler.tables.holding[1] == 2
            assert await driver.write("mains", "setpoint", 22.77) == 22.8  # scale 0.1

    run(scenario)


def test_a_write_longer_than_one_request_is_refused_before_sending() -> None:
    data = yaml.safe_load(BUS)
    data["port"] = "sim"
    data["devices"][0]["registers"].append(
        {"name": "label", "address": 100, "type": "string", "length": 124}
    )
    driver = ModbusDriver(ModbusConfig.model_validate(data), Probe().context)
    # Not connected: the refusal comes first, from the map alone.
    with pytest.raises(ValueOutOfRange, match=r"spans 124 registers; one write .* at most 123"):
        asyncio.run(driver.write("mains", "label", "x"))


@pytest.mark.parametrize(("write_function", "expected"), [("auto", 6), (16, 16)])
def test_write_function_16_writes_one_register_with_fc16(
    write_function: str | int, expected: int
) -> None:
    async def scenario() -> None:
        probe = Probe()
        data = yaml.safe_load(BUS)
        data["host"] = "sim"
        data["devices"][0]["write_function"] = write_function
        driver = ModbusDriver(ModbusConfig.model_validate(data), probe.context)
        functions: list[int] = []
        async with running(driver, probe):
            mains = (await endpoint_of("meters")).slave("mains")
            answer = mains.answer

            def record(pdu: bytes) -> Any:
                functions.append(pdu[0])
                return answer(pdu)

            mains.answer = record  # type: ignore[method-assign]
            # Connected once it has read: a write before that is refused (NotConnected).
            await eventually(lambda: count(probe, "mains") > 0, "a first reading from mains")
            await driver.write("mains", "setpoint", 19.5)
            assert mains.tables.holding[40] == 195
        assert expected in functions
        assert ({6, 16} - {expected}).isdisjoint(functions)  # not the other one

    run(scenario)
