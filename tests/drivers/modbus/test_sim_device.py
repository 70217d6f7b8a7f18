"""The simulated device answers pymodbus's client (an independent implementation)
over a real pseudo-terminal (RTU) and a real loopback TCP socket (MBAP)."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from tidegate.drivers.modbus.sim_pdu import SlaveTables, Table, with_crc
from tidegate.drivers.modbus.sim_slave import Fault, SimSlave
from tidegate.drivers.modbus.sim_transport import RtuBus, TcpBus

Client = AsyncModbusSerialClient | AsyncModbusTcpClient
TIMEOUT = 0.3
"""The client's reply timeout: only the tests of missing replies wait it out."""


def tables() -> SlaveTables:
    found = SlaveTables()
    found.map_words(Table.HOLDING, 0, [0x0102, 0x0304, 0xFFFF, 0, 7])
    found.map_words(Table.INPUT, 100, [11, 12, 13])
    found.map_bits(Table.COIL, 0, [True, False, True, False, False, False, False, False, True])
    found.map_bits(Table.DISCRETE, 10, [False, True, True])
    return found


@asynccontextmanager
async def bus_and_client(
    transport: str, slaves: dict[int, SimSlave]
) -> AsyncIterator[tuple[RtuBus | TcpBus, Client]]:
    bus: RtuBus | TcpBus
    client: Client
    if transport == "rtu":
        bus = RtuBus(slaves)
        bus.open()
        client = AsyncModbusSerialClient(bus.path, timeout=TIMEOUT, retries=0, baudrate=115200)
    else:
        bus = TcpBus(slaves)
        await bus.start()
        client = AsyncModbusTcpClient(bus.host, port=bus.port, timeout=TIMEOUT, retries=0)
    try:
        assert await client.connect()
        yield bus, client
    finally:
        client.close()
        if isinstance(bus, TcpBus):
            await bus.stop()
        else:
            bus.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


TRANSPORTS = pytest.mark.parametrize("transport", ["rtu", "tcp"])


@TRANSPORTS
def test_every_function_code_through_pymodbus(transport: str) -> None:
    async def scenario() -> None:
        slave = SimSlave(5, tables())
        async with bus_and_client(transport, {5: slave}) as (_, client):
            assert (await client.read_holding_registers(0, count=5, device_id=5)).registers == [
                0x0102, 0x0304, 0xFFFF, 0, 7,
            ]
            assert (await client.read_input_registers(101, count=2, device_id=5)).registers == [
                12, 13,
            ]
            coils = await client.read_coils(0, count=9, device_id=5)
            assert coils.bits[:9] == [True, False, True, False, False, False, False, False, True]
            inputs = await client.read_discrete_inputs(10, count=3, device_id=5)
            assert inputs.bits[:3] == [False, True, True]

            assert not (await client.write_register(3, 0xBEEF, device_id=5)).isError()  # FC6
            assert not (await client.write_registers(0, [9, 8], device_id=5)).isError()  # FC16
            assert not (await client.write_coil(1, True, device_id=5)).isError()  # FC5
            assert not (await client.write_coils(6, [True, True, False], device_id=5)).isError()

            assert (await client.read_holding_registers(0, count=5, device_id=5)).registers == [
                9, 8, 0xFFFF, 0xBEEF, 7,
            ]
            coils = await client.read_coils(0, count=9, device_id=5)
            assert coils.bits[:9] == [True, True, True, False, False, False, True, True, False]
            assert slave.requests == slave.replies == 10

    run(scenario)


@TRANSPORTS
def test_exception_replies(transport: str) -> None:
    async def scenario() -> None:
        async with bus_and_client(transport, {1: SimSlave(1, tables())}) as (_, client):
            unmapped = await client.read_holding_registers(4, count=2, device_id=1)
            assert unmapped.isError() and unmapped.exception_code == 2
            readonly = await client.write_register(100, 1, device_id=1)  # an input register
            assert readonly.isError() and readonly.exception_code == 2
            unknown = await client.read_exception_status(device_id=1)  # FC7: not served
            assert unknown.isError() and unknown.exception_code == 1

    run(scenario)


@TRANSPORTS
def test_injected_faults_as_the_client_sees_them(transport: str) -> None:
    async def scenario() -> None:
        slave = SimSlave(1, tables())
        async with bus_and_client(transport, {1: slave}) as (_, client):
            slave.inject(Fault.EXCEPTION, code=6)
            busy = await client.read_input_registers(100, count=1, device_id=1)
            assert busy.isError() and busy.exception_code == 6

            slave.inject(Fault.TIMEOUT)
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(100, count=1, device_id=1)

            slave.inject(Fault.BAD_CRC)
            if transport == "rtu":  # the client drops the frame: no reply, as far as it knows
                with pytest.raises(ModbusIOException):
                    await client.read_input_registers(100, count=1, device_id=1)
            else:  # what a TCP-to-RTU gateway answers when the reply behind it was garbled
                garbled = await client.read_input_registers(100, count=1, device_id=1)
                assert garbled.isError() and garbled.exception_code == 0x0B

            # The fault was one request long: the next one is answered.
            assert (await client.read_input_registers(100, count=1, device_id=1)).registers == [11]
            assert slave.faults_served == {Fault.EXCEPTION: 1, Fault.TIMEOUT: 1, Fault.BAD_CRC: 1}

    run(scenario)


@TRANSPORTS
def test_several_slaves_on_one_bus_and_an_absent_id_gets_no_answer(transport: str) -> None:
    async def scenario() -> None:
        first = SimSlave(1, SlaveTables(holding={0: 100}))
        second = SimSlave(2, SlaveTables(holding={0: 200}))
        async with bus_and_client(transport, {1: first, 2: second}) as (bus, client):
            assert (await client.read_holding_registers(0, count=1, device_id=2)).registers == [200]
            assert (await client.read_holding_registers(0, count=1, device_id=1)).registers == [100]
            with pytest.raises(ModbusIOException):
                await client.read_holding_registers(0, count=1, device_id=3)
            assert bus.unanswered == 1
            # The bus is still in step after the silence.
            assert (await client.read_holding_registers(0, count=1, device_id=2)).registers == [200]
            assert (first.requests, second.requests) == (1, 2)

    run(scenario)


@TRANSPORTS
def test_a_silenced_slave_comes_back(transport: str) -> None:
    async def scenario() -> None:
        slave = SimSlave(1, tables())
        async with bus_and_client(transport, {1: slave}) as (_, client):
            slave.silence()
            for _ in range(2):
                with pytest.raises(ModbusIOException):
                    await client.read_holding_registers(4, count=1, device_id=1)
            slave.resume()
            assert (await client.read_holding_registers(4, count=1, device_id=1)).registers == [7]
            assert slave.silenced == 2

    run(scenario)


def _exchange_raw(path: str, frames: bytes, want: int) -> bytes:
    """Write ``frames`` to the pty and read ``want`` reply bytes (deadline 5 s)."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        os.write(fd, frames)
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < want and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.05)[0]:
                got += os.read(fd, 256)
        return got
    finally:
        os.close(fd)


def test_rtu_ignores_a_request_with_a_bad_crc_and_finds_the_next_frame() -> None:
    async def scenario() -> None:
        bus = RtuBus({1: SimSlave(1, tables())})
        bus.open()
        try:
            good = with_crc(bytes.fromhex("0103000400 01"))
            bad = good[:-1] + bytes((good[-1] ^ 0xFF,))
            noise = b"\x00\x55"
            reply = await asyncio.to_thread(_exchange_raw, bus.path, bad + noise + good, 7)
            assert reply == with_crc(bytes.fromhex("01030200 07"))
            assert bus.bad_requests >= 1
        finally:
            bus.close()

    run(scenario)


def _mbap_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        header = conn.recv(7, socket.MSG_WAITALL)
        return header + conn.recv(int.from_bytes(header[4:6], "big") - 1, socket.MSG_WAITALL)


def test_tcp_mbap_header_by_hand_and_bad_counts() -> None:
    """The MBAP reply echoes the transaction id and unit; counts over the limits are
    exception 3 (pymodbus's client refuses to send them, so raw bytes here)."""

    async def scenario() -> None:
        bus = TcpBus({9: SimSlave(9, tables())})
        await bus.start()
        try:
            async def ask(request: str) -> bytes:
                return await asyncio.to_thread(_mbap_exchange, bus.port, bytes.fromhex(request))

            assert await ask("1234 0000 0006 09 03 0000 0002") == bytes.fromhex(
                "1234 0000 0007 09 03 04 0102 0304"
            )
            too_many_registers = "0001 0000 0006 09 03 0000 007E"
            assert await ask(too_many_registers) == bytes.fromhex("0001 0000 0003 09 83 03")
            too_many_bits = "0002 0000 0006 09 01 0000 07D1"
            assert await ask(too_many_bits) == bytes.fromhex("0002 0000 0003 09 81 03")
        finally:
            await bus.stop()

    run(scenario)


def test_a_delayed_reply_still_arrives() -> None:
    """``reply_delay`` sends the reply from a timer, not at once."""

    async def scenario() -> None:
        bus = RtuBus({1: SimSlave(1, tables())}, reply_delay=0.05)
        bus.open()
        client = AsyncModbusSerialClient(bus.path, timeout=2, retries=0)
        try:
            assert await client.connect()
            assert (await client.read_holding_registers(4, count=1, device_id=1)).registers == [7]
        finally:
            client.close()
            bus.close()

    run(scenario)
