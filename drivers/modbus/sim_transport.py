"""Where simulated slaves listen: an RTU bus on a pseudo-terminal, a TCP port.

``RtuBus`` is one RS-485 line: a pty whose slave path a client opens exactly as
it opens ``/dev/ttyUSB0`` (pyserial); every ``SimSlave`` on it hears every
request, the one whose id it names answers, and a request to an absent id gets
no answer at all. Frames are cut by their length (known from the function code)
and checked with CRC-16/MODBUS; a request with a bad CRC is ignored, as a real
slave ignores it; bytes that make no frame are dropped after a silence.

``TcpBus`` is a Modbus TCP server (MBAP framing) on 127.0.0.1 and a free port,
serving its slaves by unit id (a TCP gateway in front of an RS-485 line); an
absent unit id gets no answer either, unless ``absent_exception`` names the code
a real gateway sends instead (0x0B: gateway target device failed to respond).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import tty
from collections.abc import Mapping

from tidegate.drivers.modbus.sim_pdu import crc16, exception_pdu, rtu_request_length, with_crc
from tidegate.drivers.modbus.sim_slave import Fault, Reply, SimSlave

_RTU_SILENCE = 0.05
"""Seconds without input after which an unfinished frame is dropped (RTU's 3.5
character gap, generously: the pty has no baud rate)."""


_RTU_KEEP = 512
"""Input kept while hunting for a frame (the longest request is 263 bytes)."""


def _damaged_rtu(frame: bytes) -> bytes:
    """The frame with its CRC off by one bit."""
    return frame[:-1] + bytes((frame[-1] ^ 0x01,))


GATEWAY_TARGET_FAILED = 0x0B
"""What a TCP-to-RTU gateway answers when the slave's reply behind it was garbled."""


class _Bus:
    def __init__(self, slaves: Mapping[int, SimSlave], *, reply_delay: float = 0.0) -> None:
        self.slaves = dict(slaves)
        self.reply_delay = reply_delay
        self.unanswered = 0
        """Requests to slave ids nobody on the bus has."""
        self.bad_requests = 0
        """Request frames dropped: bad CRC, or bytes that made no frame."""

    def _serve(self, slave_id: int, pdu: bytes) -> Reply | None:
        if slave_id == 0:
            for each in self.slaves.values():
                each.broadcast(pdu)
            return None
        slave = self.slaves.get(slave_id)
        if slave is None:
            self.unanswered += 1
            return None
        return slave.answer(pdu)


class RtuBus(_Bus):
    """An RS-485 line on a pty; ``path`` is what the client opens. With ``echo`` every
    byte the client sends comes back to it first, as from a transceiver whose receiver
    stays on while it sends."""

    def __init__(
        self, slaves: Mapping[int, SimSlave], *, reply_delay: float = 0.0, echo: bool = False
    ) -> None:
        super().__init__(slaves, reply_delay=reply_delay)
        self.echo = echo
        self._master: int | None = None
        self._slave_fd: int | None = None
        self._path: str | None = None
        self._buffer = bytearray()
        self._flush: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def path(self) -> str:
        if self._path is None:
            raise RuntimeError("the RTU bus is not open")
        return self._path

    def open(self) -> None:
        """Create the pty and start listening (in the running event loop)."""
        if self._master is not None:
            return
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        # Raw mode: no echo of the requests back to the client, no CR/LF translation.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave_fd, self._loop = master, slave, loop
        self._path = os.ttyname(slave)
        loop.add_reader(master, self._on_input)

    def close(self) -> None:
        if self._loop is not None and self._master is not None:
            self._loop.remove_reader(self._master)
        for handle in (self._flush, *self._pending):
            if handle is not None:
                handle.cancel()
        self._pending.clear()
        self._flush = None
        for fd in (self._master, self._slave_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave_fd = None
        self._buffer.clear()

    def _on_input(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # the client closed its side: nothing to read
                return
            raise
        if self.echo:
            self._write(data)
        self._buffer += data
        if len(self._buffer) > _RTU_KEEP:  # noise without a silence: no frame is this long
            del self._buffer[:-_RTU_KEEP]
            self.bad_requests += 1
        self._cut_frames()
        if self._flush is not None:
            self._flush.cancel()
        self._flush = None
        if self._buffer and self._loop is not None:
            self._flush = self._loop.call_later(_RTU_SILENCE, self._silence)

    def _silence(self) -> None:
        """The line went quiet mid-frame: an unknown function code's frame ends here."""
        self._flush = None
        buffer = bytes(self._buffer)
        self._buffer.clear()
        if len(buffer) >= 4 and crc16(buffer[:-2]) == int.from_bytes(buffer[-2:], "little"):
            self._frame(buffer)
        else:
            self.bad_requests += 1

    def _cut_frames(self) -> None:
        while True:
            length = rtu_request_length(self._buffer)
            if length == -1:
                # An unknown function code: its frame ends at a silence, unless a sound
                # frame follows in the same burst (noise before a request).
                skip = self._next_sound_frame()
                if not skip:
                    return
                del self._buffer[:skip]
                self.bad_requests += 1
                continue
            if length is None or len(self._buffer) < length:
                return  # wait for more
            frame = bytes(self._buffer[:length])
            if crc16(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
                # Noise or a broken frame: hunt for the next frame one byte later.
                del self._buffer[:1]
                self.bad_requests += 1
                continue
            del self._buffer[:length]
            self._frame(frame)

    def _next_sound_frame(self) -> int:
        """Offset of the first later frame of known length with a good CRC, or 0."""
        buffer = self._buffer
        for start in range(1, len(buffer) - 3):
            length = rtu_request_length(buffer[start : start + 7])
            if length is None or length < 0 or len(buffer) - start < length:
                continue
            frame = buffer[start : start + length]
            if crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little"):
                return start
        return 0

    def _frame(self, frame: bytes) -> None:
        slave_id, pdu = frame[0], frame[1:-2]
        reply = self._serve(slave_id, pdu)
        if reply is None or reply.pdu is None:
            return
        out = with_crc(bytes((slave_id,)) + reply.pdu)
        if reply.fault is Fault.BAD_CRC:
            out = _damaged_rtu(out)
        delay = self.reply_delay if reply.delay is None else reply.delay
        if delay > 0 and self._loop is not None:
            handle = self._loop.call_later(delay, self._write_later, out)
            self._pending.add(handle)
        else:
            self._write(out)

    def _write_later(self, data: bytes) -> None:
        self._pending = {handle for handle in self._pending if not handle.cancelled()}
        self._write(data)

    def _write(self, data: bytes) -> None:
        """Write what fits; like a UART, what the client does not read is lost."""
        if self._master is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._master, data)


class TcpBus(_Bus):
    """A Modbus TCP server on 127.0.0.1; ``port`` is known once ``start()`` returned."""

    def __init__(
        self,
        slaves: Mapping[int, SimSlave],
        *,
        reply_delay: float = 0.0,
        absent_exception: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(slaves, reply_delay=reply_delay)
        self.host = host
        self.absent_exception = absent_exception
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.connections = 0
        """Connections accepted so far."""

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the TCP bus is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, self.host, 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection callback always runs in a task
        self._connections.add(task)
        self.connections += 1
        try:
            while True:
                header = await reader.readexactly(7)
                length = int.from_bytes(header[4:6], "big")
                if length < 2:
                    return  # not Modbus: a real server drops the connection
                pdu = await reader.readexactly(length - 1)
                if header[2:4] != b"\x00\x00":
                    continue  # another protocol id: not ours to answer
                out, delay = self._reply(header[6], pdu)
                if out is None:
                    continue
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(header[:4] + (len(out) + 1).to_bytes(2, "big") + header[6:7] + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # stop() cancels connections; ending quietly keeps asyncio's stream
            # callback from logging the cancellation as an error.
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _reply(self, unit: int, pdu: bytes) -> tuple[bytes | None, float]:
        """The reply PDU to send (None: none), and the delay before it."""
        if unit not in self.slaves and unit != 0 and self.absent_exception is not None:
            self.unanswered += 1
            return exception_pdu(pdu[0] if pdu else 0, self.absent_exception), self.reply_delay
        reply = self._serve(unit, pdu)
        if reply is None or reply.pdu is None:
            return None, 0.0
        delay = self.reply_delay if reply.delay is None else reply.delay
        if reply.fault is Fault.BAD_CRC:
            # TCP has its own checksums; a damaged reply is what a TCP-to-RTU gateway
            # makes of a bad CRC on the line behind it.
            return exception_pdu(pdu[0] if pdu else 0, GATEWAY_TARGET_FAILED), delay
        return reply.pdu, delay
