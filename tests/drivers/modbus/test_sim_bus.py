"""``simulated_bus``: a driver config's register maps served with moving values.

Read back with pymodbus's client and decoded with pymodbus's own
``convert_from_registers`` (not our codec), so a word-swapped f32 that reads
right here is really served word-swapped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from tests.drivers.harness import eventually
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.sim_device import Fault, running, simulated_bus

DT = AsyncModbusTcpClient.DATATYPE


def meter_config(transport: dict[str, Any], **sim: Any) -> ModbusConfig:
    return ModbusConfig.model_validate(
        {
            "name": "meters",
            **transport,
            "devices": [
                {
                    "name": "mains",
                    "slave": 1,
                    "registers": [
                        {"name": "voltage", "table": "input", "address": 0, "type": "f32",
                         "unit": "V"},
                        {"name": "power", "table": "input", "address": 12, "type": "f32",
                         "word_order": "little", "unit": "W"},
                        {"name": "energy", "table": "input", "address": 342, "type": "u32",
                         "scale": 0.01, "unit": "kWh"},
                        {"name": "model", "table": "holding", "address": 100, "type": "string",
                         "length": 4},
                        {"name": "setpoint", "table": "holding", "address": 104, "type": "i16",
                         "scale": 0.1},
                        {"name": "relay", "table": "coil", "address": 0},
                    ],
                },
                {
                    "name": "boiler",
                    "slave": 7,
                    "registers": [{"name": "temperature", "address": 0, "type": "i16",
                                   "scale": 0.1, "unit": "°C"}],
                },
            ],
            **({"sim": sim} if sim else {}),
        }
    )


SIM_VALUES = {
    "values": {
        "voltage": {"base": 231.5},
        "power": 1234.5,
        "energy": {"kind": "counter", "start": 1520.25, "increase": 3600, "every": "1h"},
        "model": "SDM1",
        "setpoint": -12.5,
        "relay": {"kind": "toggle", "every": "1h", "start": True},
        "boiler.temperature": 64.2,
    },
    "seed": 1,
}


def text(words: Sequence[int]) -> str:
    found = AsyncModbusTcpClient.convert_from_registers(list(words), DT.STRING)
    assert isinstance(found, str)
    return found.rstrip("\x00")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


@pytest.mark.parametrize("transport", [{"port": "sim"}, {"host": "sim"}])
def test_the_register_map_is_served_as_encoded(transport: dict[str, Any]) -> None:
    async def scenario() -> None:
        config = meter_config(transport, **SIM_VALUES)
        async with simulated_bus(config) as endpoint:
            client: AsyncModbusSerialClient | AsyncModbusTcpClient
            if config.tcp:
                client = AsyncModbusTcpClient(endpoint.host, port=endpoint.tcp_port, timeout=1)
            else:
                client = AsyncModbusSerialClient(endpoint.port, timeout=1)
            assert await client.connect()
            try:
                convert = client.convert_from_registers
                words = (await client.read_input_registers(0, count=2, device_id=1)).registers
                assert convert(words, DT.FLOAT32) == pytest.approx(231.5)
                words = (await client.read_input_registers(12, count=2, device_id=1)).registers
                assert convert(words, DT.FLOAT32, word_order="little") == pytest.approx(1234.5)
                assert convert(words, DT.FLOAT32) != pytest.approx(1234.5)
                words = (await client.read_input_registers(342, count=2, device_id=1)).registers
                first = convert(words, DT.UINT32)
                assert isinstance(first, int) and 152025 <= first < 152025 + 100 * 30
                words = (await client.read_holding_registers(100, count=5, device_id=1)).registers
                assert text(words[:4]) == "SDM1"
                assert convert(words[4:], DT.INT16) == -125
                coils = await client.read_coils(0, count=1, device_id=1)
                assert coils.bits[0] is True
                words = (await client.read_holding_registers(0, count=1, device_id=7)).registers
                assert convert(words, DT.INT16) == 642

                # Registers between two mapped ones are served (as 0): the driver's
                # planner reads through small gaps.
                gap = await client.read_input_registers(2, count=10, device_id=1)
                assert gap.registers == [0] * 10
                outside = await client.read_input_registers(344, count=1, device_id=1)
                assert outside.isError() and outside.exception_code == 2

                # 1 kWh a second: the total grows, and only grows.
                async def grown() -> int:
                    words = (await client.read_input_registers(342, count=2, device_id=1)).registers
                    value = convert(words, DT.UINT32)
                    assert isinstance(value, int)
                    return value

                seen = [first]
                while seen[-1] < first + 5:  # 0.05 kWh: a few tens of ms
                    seen.append(await grown())
                assert seen == sorted(seen)
            finally:
                client.close()

    run(scenario)


def test_a_written_register_keeps_its_value_and_generators_go_on_elsewhere() -> None:
    async def scenario() -> None:
        config = meter_config({"host": "sim"}, **SIM_VALUES)
        async with simulated_bus(config) as endpoint:
            client = AsyncModbusTcpClient(endpoint.host, port=endpoint.tcp_port, timeout=1)
            assert await client.connect()
            try:
                assert not (await client.write_register(104, 215, device_id=1)).isError()
                assert not (await client.write_coil(0, False, device_id=1)).isError()
                reply = await client.read_holding_registers(104, count=1, device_id=1)
                assert reply.registers == [215]
                assert (await client.read_coils(0, count=1, device_id=1)).bits[0] is False
                # The model string is not a register anyone wrote: still the generator's.
                model = (await client.read_holding_registers(100, count=4, device_id=1)).registers
                assert text(model) == "SDM1"
                # A register outside the map cannot be written.
                refused = await client.write_register(105, 1, device_id=1)
                assert refused.isError() and refused.exception_code == 2
            finally:
                client.close()

    run(scenario)


def test_defaults_fit_names_and_types() -> None:
    """No ``sim:`` block: voltage near 230 V, the energy total grows, the rest in range."""

    async def scenario() -> None:
        config = meter_config({"host": "sim"})
        async with simulated_bus(config) as endpoint:
            feeder = endpoint.feeders["mains"]
            client = AsyncModbusTcpClient(endpoint.host, port=endpoint.tcp_port, timeout=1)
            assert await client.connect()
            try:
                words = (await client.read_input_registers(0, count=2, device_id=1)).registers
                volts = client.convert_from_registers(words, DT.FLOAT32)
                assert isinstance(volts, float) and 220 < volts < 240
                words = (await client.read_input_registers(342, count=2, device_id=1)).registers
                assert client.convert_from_registers(words, DT.UINT32) == pytest.approx(
                    100_000, abs=10
                )  # 1000 kWh in hundredths
                words = (await client.read_holding_registers(100, count=4, device_id=1)).registers
                assert text(words) == "SIM mode"
                assert feeder.encode_errors == 0
            finally:
                client.close()

    run(scenario)


def test_configured_faults_and_the_running_registry() -> None:
    async def scenario() -> None:
        config = meter_config(
            {"host": "sim"},
            faults={"exception": 1.0, "exception_code": 4},
            device_faults={"boiler": {"timeout": 1.0}},
        )
        assert "meters" not in running
        async with simulated_bus(config) as endpoint:
            assert running["meters"] is endpoint
            client = AsyncModbusTcpClient(endpoint.host, port=endpoint.tcp_port, timeout=0.3,
                                          retries=0)
            assert await client.connect()
            try:
                failed = await client.read_input_registers(0, count=2, device_id=1)
                assert failed.isError() and failed.exception_code == 4
                with pytest.raises(Exception, match="No response"):
                    await client.read_holding_registers(0, count=1, device_id=7)
                assert endpoint.slave("boiler").faults_served == {Fault.TIMEOUT: 1}
            finally:
                client.close()
        assert "meters" not in running

    run(scenario)


def test_everything_stops_when_the_block_exits_also_on_cancellation() -> None:
    async def scenario() -> None:
        started = asyncio.Event()
        where: dict[str, Any] = {}

        async def user(config: ModbusConfig) -> None:
            async with simulated_bus(config) as endpoint:
                where[config.name] = endpoint
                if config.tcp:  # a connection the server must close too
                    client = AsyncModbusTcpClient(endpoint.host, port=endpoint.tcp_port)
                    assert await client.connect()
                    where["client"] = client
                started.set()
                await asyncio.Event().wait()

        rtu = meter_config({"port": "sim"})
        tcp = meter_config({"host": "sim"}).model_copy(update={"name": "tcp"})
        tasks = [asyncio.create_task(user(rtu)), asyncio.create_task(user(tcp))]
        await eventually(lambda: len(where) == 3, "both buses up")
        path, port = where["meters"].port, where["tcp"].tcp_port
        fds_open = len(os.listdir("/proc/self/fd"))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(task.cancelled() for task in tasks)
        assert running == {}
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        # The pty pair is closed: two descriptors fewer, and its slave path is gone.
        assert len(os.listdir("/proc/self/fd")) <= fds_open - 2
        assert not Path(path).exists()  # noqa: ASYNC240 (one stat of a pty path)
        where["client"].close()

    run(scenario)
