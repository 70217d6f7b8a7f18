"""The real ``modbus`` driver when devices or the bus go away, on the simulated bus.

A gateway that cannot reach its device, an answer that comes after ``timeout``, a
stale device holding the bus, a TCP connection whose only unit is silent, a bus lost
halfway through a round, and a config that cannot be simulated: each is set up
exactly (through ``sim_device.running`` or a ``TcpBus`` of the test's own), and the
tests see what the pipeline and ``tidegate status`` see.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
import serial
import yaml

from tests.drivers.harness import Probe, eventually, running
from tests.drivers.modbus.test_sim_driver import BUS, count, endpoint_of, run
from tidegate.driver import DriverState
from tidegate.drivers.modbus.bus import Bus, BusLost, Target
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.driver import ModbusDriver
from tidegate.drivers.modbus.sim_device import (
    Fault,
    RtuBus,
    TcpBus,
    build_slaves,
    simulated_bus,
)
from tidegate.drivers.modbus.sim_pdu import exception_pdu
from tidegate.drivers.modbus.sim_slave import Reply

TRANSPORTS = pytest.mark.parametrize("transport", ["port", "host"])


def bus(transport: str, sim: dict[str, Any] | None = None, **top: Any) -> ModbusConfig:
    """The shared test bus on ``transport: sim``, with top-level keys changed."""
    data = yaml.safe_load(BUS)
    data[transport] = "sim"
    data.update(top)
    data["sim"].update(sim or {})
    return ModbusConfig.model_validate(data)


def test_a_device_its_tcp_gateway_cannot_reach_goes_stale_without_dead_letters() -> None:
    async def scenario() -> None:
        simulated = bus("host")
        slaves, _ = build_slaves(simulated)
        # Only the mains meter is behind the gateway; the boiler's unit id gets 0x0B.
        gateway = TcpBus({1: slaves["mains"]}, absent_exception=0x0B)
        await gateway.start()
        try:
            data = yaml.safe_load(BUS)
            data.update(host="127.0.0.1", tcp_port=gateway.port)
            probe = Probe()
            driver = ModbusDriver(ModbusConfig.model_validate(data), probe.context)
            health = driver.health
            async with running(driver, probe):
                await eventually(lambda: health.devices["boiler"].stale, "the boiler stale")
                await eventually(
                    lambda: health.counters.get("gateway_target_failed", 0) >= 3,
                    "the gateway asked three times",
                )
                mains = count(probe, "mains")
                await eventually(lambda: count(probe, "mains") > mains, "mains read on")
            assert health.devices["boiler"].last_error == "gateway_target_failed"
            assert health.devices["boiler"].last_seen_monotonic is None  # never answered
            assert not health.devices["mains"].stale
            assert health.errors == 1  # the change to stale, not one per poll
            assert probe.rejects == [] and count(probe, "boiler") == 0
        finally:
            await gateway.stop()

    run(scenario)


@TRANSPORTS
def test_an_answer_after_timeout_is_a_late_reply_not_a_damaged_frame(transport: str) -> None:
    async def scenario() -> None:
        probe = Probe()
        # Every answer comes 150 ms after its request; the driver waits 80 ms.
        driver = ModbusDriver(bus(transport, {"reply_delay": 0.15}, timeout="80ms"),
                              probe.context)
        counters = driver.health.counters
        async with running(driver, probe):
            await eventually(lambda: counters.get("late_reply", 0) >= 3, "late replies")
        assert "bad_crc" not in counters and "garbled" not in counters
        assert probe.rejects == []  # a sound frame is no dead letter

    run(scenario)


def test_a_stale_device_is_asked_once_a_round_and_its_other_reads_wait() -> None:
    async def scenario() -> None:
        data = yaml.safe_load(BUS)
        data.update(port="sim", baudrate=115200, retries=2, timeout="50ms")
        # The mains meter's setpoint is read at its own interval: a second group.
        data["devices"][0]["registers"][2]["interval"] = "60ms"
        probe = Probe()
        driver = ModbusDriver(ModbusConfig.model_validate(data), probe.context)
        counters = driver.health.counters
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            mains = endpoint.slave("mains")
            mains.silence()
            await eventually(lambda: driver.health.devices["mains"].stale, "mains stale")
            asked, silent = mains.requests, counters["timeout"]
            await eventually(lambda: counters["timeout"] >= silent + 4, "four more probes")
            boiler = count(probe, "boiler")
            await eventually(lambda: count(probe, "boiler") > boiler, "the boiler read on")
            probes = counters["timeout"] - silent
            # One request a probe, no retries, no other group (one more may be on the
            # line as the counters are read); with retries: 2 it would be 3 or more.
            assert mains.requests - asked <= probes + 1

    run(scenario)


def test_a_tcp_connection_whose_units_are_all_silent_stays_up() -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = ModbusDriver(bus("host", timeout="50ms"), probe.context)
        counters = driver.health.counters
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            await eventually(lambda: count(probe, "boiler") >= 1, "a first reading")
            endpoint.slave("mains").silence()
            endpoint.slave("boiler").silence()
            # pymodbus would close the connection after retries + 3 unanswered requests.
            await eventually(lambda: counters.get("timeout", 0) >= 8, "eight unanswered")
            assert driver.connects == 1
            assert driver.health.state is DriverState.RUNNING
            endpoint.slave("boiler").resume()
            await eventually(lambda: not driver.health.devices["boiler"].stale, "boiler back")

    run(scenario)


def test_readings_of_a_round_survive_the_bus_lost_in_it() -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = ModbusDriver(bus("port"), probe.context)
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            mains = endpoint.slave("mains")
            answer = mains.answer
            lost_at: list[int] = []

            def unplug_at_the_last_read(pdu: bytes) -> Reply:
                # The mains round reads holding 40, input 0, then input 12: the port
                # goes away at the third, after two readings came in.
                if pdu[:3] == bytes((4, 0, 12)) and not lost_at:
                    lost_at.append(len(probe.batches))
                    assert isinstance(endpoint.bus, RtuBus)
                    endpoint.bus.close()
                    return Reply(None, Fault.TIMEOUT)
                return answer(pdu)

            mains.answer = unplug_at_the_last_read  # type: ignore[method-assign]
            await eventually(
                lambda: driver.health.state is DriverState.RECONNECTING, "the bus lost"
            )
        after = [e.name for batch in probe.batches[lost_at[0]:] for e in batch]
        assert {"mains.setpoint", "mains.voltage"} <= set(after)
        assert "mains.power" not in after
        # While the bus is down every device shows stale, with one error for the outage.
        assert all(device.stale for device in driver.health.devices.values())
        assert driver.health.errors == 1

    run(scenario)


def test_a_config_that_cannot_be_simulated_fails_once_without_a_traceback() -> None:
    async def scenario() -> None:
        good = bus("port")
        # `tidegate check` refuses slave 0 on a serial bus; a config made in code can
        # still carry it.
        broadcast = good.devices[0].model_copy(update={"slave": 0})
        config = good.model_copy(update={"devices": [broadcast, good.devices[1]]})
        probe = Probe()
        driver = ModbusDriver(config, probe.context)
        await asyncio.wait_for(driver.run(probe.emit), 10)  # returns: no crash loop
        assert driver.health.state is DriverState.FAILED
        assert "cannot simulate" in (driver.health.last_error or "")

    run(scenario)


@pytest.mark.parametrize("local_echo", [True, False])
def test_local_echo_drops_the_echo_of_each_request(local_echo: bool) -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = ModbusDriver(bus("port", {"echo": True}, local_echo=local_echo), probe.context)
        async with running(driver, probe):
            if local_echo:
                await eventually(lambda: count(probe, "boiler") >= 3, "three boiler rounds")
            else:  # the echo is taken for the answer: nothing reads
                await eventually(lambda: driver.health.devices["boiler"].stale, "stale")
        assert (driver.health.counters == {}) is local_echo

    run(scenario)


def test_a_read_refused_for_its_gap_is_split_and_its_registers_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        data = yaml.safe_load(BUS)
        data["port"] = "sim"
        data["devices"][0]["max_gap"] = 10  # voltage (0-1) and power (12-13): one read 0+14
        probe = Probe()
        driver = ModbusDriver(ModbusConfig.model_validate(data), probe.context)
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            mains = endpoint.slave("mains")
            answer = mains.answer

            def no_registers_2_to_11(pdu: bytes) -> Reply:
                # A device whose map has a hole: reading through it is refused.
                if pdu[0] == 4:
                    start = int.from_bytes(pdu[1:3], "big")
                    end = start + int.from_bytes(pdu[3:5], "big")
                    if start < 12 and end > 2:
                        return Reply(exception_pdu(4, 2), Fault.EXCEPTION)
                return answer(pdu)

            mains.answer = no_registers_2_to_11  # type: ignore[method-assign]
            await eventually(lambda: len(probe.values("mains.power")) >= 3,
                             "mains read in two parts")
        assert driver.health.counters == {"illegal_data_address": 1}
        assert len(probe.rejects) == 1
        assert "set `max_gap: 0`" in caplog.text
        assert len(probe.values("mains.voltage")) >= 3

    run(scenario)


def test_a_serial_port_that_does_not_open_says_why(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = bus("port")

        async def refusal(port: str) -> str:
            target = Bus(config, Target(port=port), lambda device, raw: None, lambda slave: None)
            try:
                with pytest.raises(BusLost) as caught:
                    await target.connect()
            finally:
                target.close()
            return str(caught.value)

        async with simulated_bus(config) as endpoint:
            holder = serial.Serial(endpoint.port, exclusive=True)  # another program has it
            try:
                assert await refusal(endpoint.port) == f"cannot open {endpoint.port}: busy " \
                    "(another program has it open)"
            finally:
                holder.close()
        plain = tmp_path / "ttyUSB9"
        plain.write_bytes(b"")
        assert await refusal(str(plain)) == f"cannot open {plain}: not a serial port"
        assert await refusal(str(tmp_path / "gone")) == \
            f"cannot open {tmp_path / 'gone'}: no such device (unplugged?)"
        if os.geteuid() != 0:  # root may open anything
            plain.chmod(0)
            assert "permission denied" in await refusal(str(plain))

    run(scenario)


def test_the_rtu_line_is_quiet_for_frame_gap_between_exchanges() -> None:
    async def scenario() -> None:
        gap = 0.03
        probe = Probe()
        driver = ModbusDriver(bus("port", frame_gap="30ms"), probe.context)
        loop = asyncio.get_running_loop()
        arrivals: list[float] = []
        async with running(driver, probe):
            endpoint = await endpoint_of("meters")
            for name in ("mains", "boiler"):
                slave = endpoint.slave(name)

                def arrived(pdu: bytes, answer: Any = slave.answer) -> Reply:
                    arrivals.append(loop.time())
                    reply: Reply = answer(pdu)
                    return reply

                slave.answer = arrived  # type: ignore[method-assign]
            await eventually(lambda: len(arrivals) >= 12, "twelve requests")
        # Each request comes at least `gap` after the one before was answered (the
        # answer is written as the request arrives): a lower bound, whatever the load.
        # Without the gap the boiler's request follows the mains' answer at once.
        spacings = [b - a for a, b in itertools.pairwise(arrivals)]
        assert min(spacings) >= gap, spacings

    run(scenario)
