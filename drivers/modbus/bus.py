"""One Modbus bus (a serial port, or a TCP connection) through pymodbus's client.

A bus carries one request at a time: an asyncio lock orders polling and writes,
and on RTU the line is kept silent for ``frame_gap`` between the end of one
exchange and the next request, as the serial line spec requires (pymodbus does not
keep that gap itself). pymodbus retries unanswered requests (``retries``); what it
reports is turned into our errors:

- an exception reply -> ``ExceptionReply`` with its code and name;
- no answer after the retries -> ``NoAnswer``; if bytes did arrive but never made a
  frame (a bad CRC, line noise, a TCP frame cut short) the bus says so in
  ``garbled``, with the bytes, so that the driver counts them apart from silence;
- the port or connection gone -> ``BusLost``: the driver reconnects with backoff.

pymodbus's own reconnect is switched off (``reconnect_delay=0``): the driver's
backoff (``reconnect:``) is the one policy.

pymodbus logs every unanswered request at ERROR, with a dump of the last frames:
a slave that is switched off would write that into the journal at every poll. The
driver counts those in ``tidegate status`` and logs when a device goes stale and
comes back, so pymodbus's logger is set to CRITICAL unless something configured
it already (set the ``pymodbus`` logger's level to see its frames again).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.exceptions import ExceptionReply, ModbusError, NoAnswer

_PYMODBUS_LOG = logging.getLogger("pymodbus")
if _PYMODBUS_LOG.level == logging.NOTSET:
    _PYMODBUS_LOG.setLevel(logging.CRITICAL)

_PARITY = {"none": "N", "even": "E", "odd": "O"}
_READ = {"holding": 3, "input": 4, "coil": 1, "discrete": 2}


def _missing(port: str) -> str:
    """Why a port did not open, where that is plain (pymodbus does not say)."""
    return "" if os.path.exists(port) else ": no such device (unplugged?)"


class BusLost(ModbusError):
    """The port or the TCP connection is gone."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the bus is: a serial port path, or a TCP host and port."""

    port: str | None = None
    host: str | None = None
    tcp_port: int = 502

    def __str__(self) -> str:
        return self.port if self.port is not None else f"{self.host}:{self.tcp_port}"


class Bus:
    """A connected pymodbus client, one request at a time."""

    def __init__(
        self, config: ModbusConfig, target: Target, garbled: Callable[[str, bytes], None]
    ) -> None:
        self.config = config
        self.target = target
        self._garbled = garbled
        self._gap = config.gap_seconds
        self._lock = asyncio.Lock()
        self._quiet_since = 0.0
        self._received = b""
        self._framed = False
        self._device = ""
        """The device the request on the line is for."""
        self.client: AsyncModbusSerialClient | AsyncModbusTcpClient
        common = {
            "timeout": config.timeout,
            "retries": config.retries,
            "reconnect_delay": 0.0,  # our backoff decides when to try again
            "name": config.name,
            "trace_packet": self._packet,
            "trace_pdu": self._pdu,
        }
        if target.port is not None:
            self.client = AsyncModbusSerialClient(
                target.port,
                baudrate=config.baudrate,
                bytesize=config.bytesize,
                parity=_PARITY[config.parity],
                stopbits=config.stopbits,
                **common,  # type: ignore[arg-type]
            )
        else:
            assert target.host is not None
            self.client = AsyncModbusTcpClient(
                target.host, port=target.tcp_port, **common  # type: ignore[arg-type]
            )

    # --- pymodbus's trace hooks: what came in, and whether it made a frame -----------

    def _packet(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._attempt_over()
        elif data.startswith(self._received):
            self._received = data  # pymodbus hands over its whole receive buffer
        else:
            self._received += data
        return data

    def _pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self._framed = True
        return pdu

    def _attempt_over(self) -> None:
        """Bytes since the last request that made no frame: garbled."""
        if self._received and not self._framed:
            self._garbled(self._device, self._received)
        self._received, self._framed = b"", False

    # --- connection -------------------------------------------------------------------

    async def connect(self) -> None:
        if not await self.client.connect():
            port = self.target.port
            if port is None:
                raise BusLost(f"cannot connect to {self.target}")
            raise BusLost(f"cannot open {port}{_missing(port)}")
        self._quiet_since = time.monotonic()

    def close(self) -> None:
        self.client.close()

    @property
    def connected(self) -> bool:
        return self.client.connected

    # --- requests ---------------------------------------------------------------------

    async def read(self, device: str, slave: int, table: str, address: int, count: int
                   ) -> Sequence[int]:
        """``count`` registers (or bits, as 0/1) of ``table`` from ``address``."""
        client = self.client
        reader = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }[table]
        reply = await self._exchange(
            device, _READ[table], partial(reader, address, count=count, device_id=slave)
        )
        if table in ("coil", "discrete"):
            # A bit reply is padded to whole bytes: the bits past `count` are filler.
            return [int(bit) for bit in reply.bits[:count]]
        return reply.registers

    async def write_registers(self, device: str, slave: int, address: int,
                              words: Sequence[int]) -> None:
        """FC6 for one register, FC16 for several."""
        client = self.client
        if len(words) == 1:
            await self._exchange(
                device, 6, lambda: client.write_register(address, words[0], device_id=slave)
            )
        else:
            await self._exchange(
                device, 16, lambda: client.write_registers(address, list(words), device_id=slave)
            )

    async def write_coil(self, device: str, slave: int, address: int, value: bool) -> None:
        """FC5."""
        client = self.client
        await self._exchange(
            device, 5, lambda: client.write_coil(address, value, device_id=slave)
        )

    async def _exchange(
        self, device: str, function: int, call: Callable[[], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        async with self._lock:
            wait = self._quiet_since + self._gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._received, self._framed, self._device = b"", False, device
            try:
                reply = await call()
            except ConnectionException as exc:
                raise BusLost(f"{self.target}: {exc}") from None
            except ModbusException as exc:
                self._attempt_over()
                if not self.client.connected:
                    raise BusLost(f"{self.target}: connection lost ({exc})") from None
                raise NoAnswer(f"device {device!r} did not answer function {function}") from None
            finally:
                self._quiet_since = time.monotonic()
            if reply.isError():
                raise ExceptionReply(device, function, reply.exception_code)
            return reply
