"""One Modbus bus (a serial port, or a TCP connection) through pymodbus's client.

A bus carries one request at a time: an asyncio lock orders polling and writes,
and on RTU the line is kept silent for ``frame_gap`` between the end of one
exchange and the next request, as the serial line spec requires (pymodbus does not
keep that gap itself). An RTU answer has no transaction id: after an unanswered
attempt the next request to that slave (a retry, or its next read) waits
``settle_seconds`` (``timeout``) more and for a quiet line, so a late answer is
dropped and counted (``late_reply``), not taken for it; other slaves are asked
meanwhile (pymodbus skips another slave id's frame). pymodbus would resend at once
after a timeout, so it makes one attempt a call and the retries are ours
(``retries``; fewer for a stale device's probe). Every answer is checked against its
request (``replies.mismatch``); one that does not fit is never decoded but counted
(``mismatched``), and the request retried. pymodbus's outcomes become our errors:

- an exception reply -> ``ExceptionReply`` with its code and name;
- no answer after the retries -> ``NoAnswer``; only mismatched ones ->
  ``MismatchedReply``;
- bytes that arrived but were not this request's answer are sorted out when the
  attempt is over: whole, sound frames (the CRC checks on RTU, the MBAP length is
  complete on TCP) are a *late reply*, an answer to an earlier request that came
  after ``timeout`` (``late(slave id)``: the fix is a longer ``timeout``, not the
  wiring); anything else never made a frame (a bad CRC, line noise, a TCP frame cut
  short) and goes to ``garbled`` with the bytes;
- the port or connection gone -> ``BusLost``: the driver reconnects with backoff.

pymodbus's own reconnect is switched off (``reconnect_delay=0``): the driver's
backoff (``reconnect:``) is the one policy. So is pymodbus's habit of closing a TCP
connection after ``retries + 3`` unanswered requests in a row
(``set_max_no_responses``): a unit that is switched off is the device's problem,
shown as its staleness, not a lost connection; a dead socket still shows as one.

pymodbus logs every unanswered request at ERROR, with a dump of the last frames,
at every poll of a switched-off slave; the driver counts and logs these itself, so
pymodbus's logger is set to CRITICAL unless something configured it already.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.exceptions import (
    ExceptionReply,
    MismatchedReply,
    ModbusError,
    NoAnswer,
)
from tidegate.drivers.modbus.port_check import why_not_open
from tidegate.drivers.modbus.registers import READ_FUNCTION
from tidegate.drivers.modbus.replies import mismatch, pdu_bytes, rtu_frames, tcp_frames

_PYMODBUS_LOG = logging.getLogger("pymodbus")
if _PYMODBUS_LOG.level == logging.NOTSET:
    _PYMODBUS_LOG.setLevel(logging.CRITICAL)

_PARITY = {"none": "N", "even": "E", "odd": "O"}
_TABLE_WORDS = {
    "holding": "holding registers",
    "input": "input registers",
    "coil": "coils",
    "discrete": "discrete inputs",
}


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
        self,
        config: ModbusConfig,
        target: Target,
        garbled: Callable[[str, bytes], None],
        late: Callable[[int], None],
        mismatched: Callable[[str, str], None] | None = None,
    ) -> None:
        self.config = config
        self.target = target
        self._garbled = garbled
        self._late = late
        self._mismatched = mismatched or (lambda device, what: None)
        self._gap = config.gap_seconds
        self._settle = config.settle_seconds
        self._lock = asyncio.Lock()
        self._quiet_since = 0.0
        self._last_byte = 0.0
        """When the last byte came in (monotonic clock)."""
        self._owed: dict[int, float] = {}
        """Slave id -> when an attempt of its went unanswered (or got another request's
        answer): its own answer may still come, so its next request waits ``settle``."""
        self._received = b""
        self._framed = 0
        """Answers pymodbus made of ``_received`` and took for the request's."""
        self._device = ""
        """The device the request on the line is for."""
        self.client: AsyncModbusSerialClient | AsyncModbusTcpClient
        common = {
            "timeout": config.timeout,
            "retries": 0,  # one attempt a call: the retries are ours (see `_unlocked`)
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
                handle_local_echo=config.local_echo,
                **common,  # type: ignore[arg-type]
            )
        else:
            assert target.host is not None
            self.client = AsyncModbusTcpClient(
                target.host, port=target.tcp_port, **common  # type: ignore[arg-type]
            )
        # Never drop a TCP connection for want of answers: see the module docstring.
        self.client.set_max_no_responses(sys.maxsize)

    # --- pymodbus's trace hooks: what came in, and whether it made a frame -----------

    def _packet(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._attempt_over()
            return data
        self._last_byte = time.monotonic()
        if data.startswith(self._received):
            self._received = data  # pymodbus hands over its whole receive buffer
        else:
            self._received += data
        return data

    def _pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        # pymodbus takes a frame for the answer only while a request waits for one (its
        # response future is not done); a frame that comes after is dropped: late.
        if not sending and not self.client.ctx.response_future.done():
            self._framed += 1
        return pdu

    def _attempt_over(self) -> None:
        """Sort out the bytes since the last request that were not its answer."""
        received, framed = self._received, self._framed
        self._received, self._framed = b"", 0
        if not received:
            return
        frames = (tcp_frames if self.target.port is None else rtu_frames)(received)
        if frames is not None:
            for slave in frames[: max(len(frames) - framed, 0)]:
                self._late(slave)  # an answer that came after its request's timeout
        elif not framed:
            self._garbled(self._device, received)

    # --- connection -------------------------------------------------------------------

    async def connect(self) -> None:
        if not await self.client.connect():
            port = self.target.port
            if port is None:
                raise BusLost(f"cannot connect to {self.target}")
            why = await asyncio.to_thread(why_not_open, port)
            raise BusLost(f"cannot open {port}{why}")
        self._quiet_since = time.monotonic()

    def close(self) -> None:
        self.client.close()

    def _gone(self) -> str:
        port = self.target.port
        if port is not None and not os.path.exists(port):
            return f"{port}: the port went away (unplugged?)"
        return f"{self.target}: the connection is gone"

    @property
    def connected(self) -> bool:
        return self.client.connected

    # --- requests ---------------------------------------------------------------------

    async def read(self, device: str, slave: int, table: str, address: int, count: int,
                   *, retries: int | None = None) -> Sequence[int]:
        """``count`` registers (or bits, as 0/1) of ``table`` from ``address``; with
        ``retries``, that many retries instead of the config's."""
        client = self.client
        reader = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }[table]
        reply = await self._exchange(
            device,
            slave,
            READ_FUNCTION[table],
            partial(reader, address, count=count, device_id=slave),
            retries=retries,
            what=f"{_TABLE_WORDS[table]} {address}+{count}",
            count=count,
            bits=table in ("coil", "discrete"),
        )
        if table in ("coil", "discrete"):
            # A bit reply is padded to whole bytes: the bits past `count` are filler.
            return [int(bit) for bit in reply.bits[:count]]
        return reply.registers

    async def write_registers(self, device: str, slave: int, address: int,
                              words: Sequence[int], *, fc16: bool = False) -> None:
        """FC6 for one register (unless ``fc16``), FC16 for several."""
        async with self._lock:
            await self._write_registers(device, slave, address, words, fc16=fc16)

    async def update_registers(
        self,
        device: str,
        slave: int,
        address: int,
        count: int,
        change: Callable[[Sequence[int]], Sequence[int]],
        *,
        fc16: bool = False,
    ) -> Sequence[int]:
        """Read ``count`` holding registers, write back ``change(words)``, with no other
        request between the two (a read-modify-write); returns what was written."""
        async with self._lock:
            reply = await self._unlocked(
                device, slave, 3,
                partial(self.client.read_holding_registers, address, count=count,
                        device_id=slave),
                what=f"holding registers {address}+{count}",
                count=count,
            )
            words = change(reply.registers)
            await self._write_registers(device, slave, address, words, fc16=fc16)
            return words

    async def _write_registers(self, device: str, slave: int, address: int,
                               words: Sequence[int], *, fc16: bool) -> None:
        client = self.client
        what = f"writing holding registers {address}+{len(words)}"
        if len(words) == 1 and not fc16:
            await self._unlocked(
                device, slave, 6, lambda: client.write_register(address, words[0], device_id=slave),
                what=what,
            )
        else:
            await self._unlocked(
                device, slave, 16,
                lambda: client.write_registers(address, list(words), device_id=slave),
                what=what,
            )

    async def write_coil(self, device: str, slave: int, address: int, value: bool) -> None:
        """FC5."""
        client = self.client
        await self._exchange(
            device, slave, 5, lambda: client.write_coil(address, value, device_id=slave),
            what=f"writing coil {address}",
        )

    async def _exchange(
        self,
        device: str,
        slave: int,
        function: int,
        call: Callable[[], Awaitable[ModbusPDU]],
        *,
        retries: int | None = None,
        what: str = "",
        count: int | None = None,
        bits: bool = False,
    ) -> ModbusPDU:
        async with self._lock:
            return await self._unlocked(device, slave, function, call, retries=retries,
                                        what=what, count=count, bits=bits)

    async def _quiet(self, slave: int) -> None:
        """Wait until the line may carry a request to ``slave``: quiet for ``frame_gap``
        since the last byte and, if an attempt of ``slave``'s went unanswered, ``settle``
        after it: its answer may still come, and an RTU answer carries no transaction id.
        What came meanwhile is sorted out (a late answer is dropped and counted, never
        taken for the next request's). Other slaves are not held up: pymodbus skips a
        frame from another slave id."""
        owed = self._owed.get(slave)
        ready = time.monotonic() if owed is None else owed + self._settle
        # A late answer is no longer than `timeout` on the wire (`tidegate check`); a
        # line that babbles longer does not hold the bus: its bytes go to `garbled`.
        give_up = max(ready, time.monotonic()) + 2 * self._settle + 3 * self._gap
        while True:
            since = max(self._quiet_since, self._last_byte)
            left = min(max(since + self._gap, ready), give_up) - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)
                continue
            if owed is None or time.monotonic() >= give_up:
                break
            # Bytes already read by the loop but not yet handed over would be missed:
            # let their callback run, then look again.
            await asyncio.sleep(0)
            if max(self._quiet_since, self._last_byte) == since:
                break
        self._owed.pop(slave, None)
        self._attempt_over()  # what came in between two exchanges: the last device's

    async def _unlocked(
        self,
        device: str,
        slave: int,
        function: int,
        call: Callable[[], Awaitable[ModbusPDU]],
        *,
        retries: int | None = None,
        what: str = "",
        count: int | None = None,
        bits: bool = False,
    ) -> ModbusPDU:
        """One request and its answer, checked against it (``count`` registers or, with
        ``bits``, bits for a read); the caller holds the lock. The retries are ours, not
        pymodbus's: pymodbus would resend at once, into a late answer still on the line."""
        attempts = (self.config.retries if retries is None else retries) + 1
        wrong: tuple[str, bytes] | None = None
        for _ in range(attempts):
            await self._quiet(slave)
            self._device = device
            try:
                reply = await call()
            except ConnectionException:
                raise BusLost(self._gone()) from None
            except ModbusException:
                if not self.client.connected:
                    raise BusLost(self._gone()) from None
                if self._settle:
                    self._owed[slave] = time.monotonic()
                else:
                    self._attempt_over()
                wrong = None
                continue
            finally:
                self._quiet_since = time.monotonic()
            why = mismatch(function, reply, count, bits=bits)
            if why is None:
                if reply.isError():
                    raise ExceptionReply(device, function, reply.exception_code)
                return reply
            # Another request's answer (most likely a late one): never decoded; its own
            # answer may still come, so the line settles before the retry.
            if self._settle:
                self._owed[slave] = time.monotonic()
            wrong = (f"device {device!r} answered {what} with {why}", pdu_bytes(reply))
            self._mismatched(device, wrong[0])
        if wrong is not None:
            raise MismatchedReply(*wrong)
        raise NoAnswer(f"device {device!r} did not answer ({what})")
