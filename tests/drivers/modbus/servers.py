"""Real Modbus servers for the driver tests: pymodbus's own (an implementation
independent of ours), on a free loopback TCP port or on a real pseudo-terminal.

``Served`` is one slave: its four tables (from address 0) and two controls the
tests need, through pymodbus's ``action`` hook: ``silent`` (the slave does not
answer at all, as an absent RS-485 slave) and ``refuse_next``/``refuse_next_write``
(the next request, or the next write, gets that exception code).
``tcp_server``/``rtu_server`` serve several slaves on one bus. RTU runs over two
pseudo-terminals joined by ``PtyLink``, a byte pump that can also damage the next
reply, so that the driver opens a pty slave path with pyserial exactly as it opens
/dev/ttyUSB0 while pymodbus's serial server opens the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from tidegate.demo.local_broker import free_port

_BLOCK = {"coil": "c", "discrete": "d", "holding": "h", "input": "i"}


@dataclass
class Served:
    """One slave on the served bus."""

    slave: int
    holding: list[int] = field(default_factory=lambda: [0] * 32)
    input: list[int] = field(default_factory=lambda: [0] * 32)
    coils: list[bool] = field(default_factory=lambda: [False] * 16)
    discrete: list[bool] = field(default_factory=lambda: [False] * 16)
    silent: bool = False
    refuse_next: ExcCodes | None = None
    refuse_next_write: ExcCodes | None = None
    requests: int = 0
    """Requests that reached this slave's tables (answered or not)."""
    writes: int = 0
    """Write requests among them."""
    _server: ModbusTcpServer | ModbusSerialServer | None = None

    def device(self) -> SimDevice:
        return SimDevice(
            self.slave,
            simdata=(
                [SimData(0, values=list(self.coils), datatype=DataType.BITS)],
                [SimData(0, values=list(self.discrete), datatype=DataType.BITS)],
                [SimData(0, values=list(self.holding), datatype=DataType.REGISTERS)],
                [SimData(0, values=list(self.input), datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )

    async def _action(  # noqa: PLR0917 (pymodbus calls it with these six, by position)
        self, function: int, start: int, address: int, count: int,
        registers: list[int], values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests += 1
        if self.silent:
            raise NoSuchIdException(f"slave {self.slave} is silent")  # no reply at all
        refused: ExcCodes | None = None
        if values is not None:
            self.writes += 1
            refused, self.refuse_next_write = self.refuse_next_write, None
        if refused is None:
            refused, self.refuse_next = self.refuse_next, None
        return refused

    def _registers(self, table: str) -> list[int]:
        assert self._server is not None, "not served yet"
        runtime = self._server.context.devices[self.slave]  # type: ignore[union-attr]
        return runtime.block[_BLOCK[table]][2]

    def set_words(self, table: str, address: int, words: Sequence[int]) -> None:
        """Change registers while served (what the device measures)."""
        self._registers(table)[address : address + len(words)] = list(words)

    def words(self, table: str, address: int, count: int) -> list[int]:
        return self._registers(table)[address : address + count]

    def bits(self, table: str, address: int, count: int) -> list[bool]:
        return SimUtils.registersToBits(self._registers(table))[address : address + count]

    def set_bit(self, table: str, address: int, value: bool) -> None:
        registers = self._registers(table)
        word, bit = divmod(address, 16)
        registers[word] = registers[word] | (1 << bit) if value else registers[word] & ~(1 << bit)


def _attach(server: ModbusTcpServer | ModbusSerialServer, slaves: Sequence[Served]) -> None:
    for slave in slaves:
        slave._server = server


async def stop(server: ModbusTcpServer | ModbusSerialServer) -> None:
    await server.shutdown()  # type: ignore[no-untyped-call]


@dataclass
class TcpServed:
    host: str
    port: int
    server: ModbusTcpServer

    async def stop(self) -> None:
        await stop(self.server)


@asynccontextmanager
async def tcp_server(slaves: Sequence[Served], port: int | None = None
                     ) -> AsyncIterator[TcpServed]:
    """pymodbus's TCP server for ``slaves`` on 127.0.0.1, until the block ends."""
    port = port or free_port()
    server = ModbusTcpServer(
        [s.device() for s in slaves], address=("127.0.0.1", port), ignore_missing_devices=True
    )
    _attach(server, slaves)
    await server.serve_forever(background=True)
    try:
        yield TcpServed("127.0.0.1", port, server)
    finally:
        await stop(server)


class PtyLink:
    """Two pseudo-terminals joined back to back: what one's slave side writes, the
    other's slave side reads. ``damage_next`` flips a bit in the next chunk that
    goes from the server to the driver (a bad CRC on the wire)."""

    def __init__(self) -> None:
        self._driver_master, driver_side = os.openpty()
        self._server_master, server_side = os.openpty()
        for fd in (driver_side, server_side):
            tty.setraw(fd)
        self.driver_path = os.ttyname(driver_side)
        self.server_path = os.ttyname(server_side)
        # Held open so that a side is never without its slave (EIO on the master).
        self._slaves = (driver_side, server_side)
        self.damage_next = False
        self.damaged: list[bytes] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self._driver_master, self._pump, self._driver_master, self._server_master)
        loop.add_reader(self._server_master, self._pump, self._server_master, self._driver_master)

    def _pump(self, source: int, sink: int) -> None:
        try:
            data = os.read(source, 4096)
        except OSError:
            return
        if source == self._server_master and self.damage_next and data:
            self.damage_next = False
            data = data[:-1] + bytes([data[-1] ^ 0x01])
            self.damaged.append(data)
        os.write(sink, data)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in (self._driver_master, self._server_master):
            loop.remove_reader(fd)
        for fd in (self._driver_master, self._server_master, *self._slaves):
            with contextlib.suppress(OSError):
                os.close(fd)


@asynccontextmanager
async def rtu_server(slaves: Sequence[Served], baudrate: int = 115200
                     ) -> AsyncIterator[PtyLink]:
    """pymodbus's serial (RTU) server for ``slaves`` behind a ``PtyLink``; the driver
    opens ``link.driver_path``."""
    link = PtyLink()
    link.start()
    server = ModbusSerialServer(
        [s.device() for s in slaves], port=link.server_path, baudrate=baudrate,
        ignore_missing_devices=True, reconnect_delay=0,
    )
    _attach(server, slaves)
    try:
        await server.serve_forever(background=True)
        yield link
    finally:
        await stop(server)
        link.close()
