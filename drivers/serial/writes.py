"""Writes to a serial device on behalf of actions: a frame out, and optionally its reply back.

``SerialDriver.transact`` is the public side; this is the machinery behind it,
kept out of ``driver`` so that the read loop stays readable.

One lock orders everything that writes to the port while it is open: a
``poll:`` request holds it from its write until its response came (or its
``response_timeout`` passed), and a transact from its write until its reply came
(or its ``reply_timeout`` passed). A request/response device answers one request
at a time; a write in the middle of another's response window would take its
answer. The ``on_open`` commands go out before the port is handed to transacts,
so they need no lock.

A transact waiting for a reply takes the next complete frame the driver's framing
cuts after the last byte of the write went out: the read loop hands it over
(``take_reply``) instead of parsing it, so it never becomes an event. A frame the
framing rejects (a bad checksum) is rejected as ever and is no reply.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from tidegate.driver import DriverHealth
from tidegate.errors import ActionError

WRITE_SLACK = 2.0
"""Seconds a frame may take to get into the port beyond its time on the wire: a port
held by flow control (CTS low, XOFF) longer than this fails the write."""


class PortWrites:
    """The write side of one driver's port, across its sessions."""

    def __init__(
        self, name: str, health: DriverHealth, device_failed: Callable[[str], None]
    ) -> None:
        """``device_failed(message)``: a write found the device gone; the read loop
        reconnects, as when a read fails."""
        self.name = name
        self.health = health
        self.lock = asyncio.Lock()
        """Held by a poll request through its response window and by a transact
        through its reply window."""
        self._device_failed = device_failed
        self._fd: int | None = None
        self._path = ""
        self._baudrate = 9600
        self._reply: asyncio.Future[bytes] | None = None
        self._room: asyncio.Future[None] | None = None
        """A write waiting for the port to take more bytes (its descriptor watched)."""

    # --- what the read loop calls -------------------------------------------------------

    def opened(self, fd: int, path: str, baudrate: int) -> None:
        """The port is open (and its ``on_open`` commands written): transacts may write."""
        self._fd, self._path, self._baudrate = fd, path, baudrate

    def closed(self, why: str) -> None:
        """The session ended; a transact waiting for its reply fails with ``why``."""
        fd, self._fd = self._fd, None
        reply = self._reply
        if reply is not None and not reply.done():
            reply.set_exception(ActionError(f"{self.name}: {why} before the reply came"))
        room = self._room
        if fd is not None and room is not None and not room.done():
            # Unwatched now, before the port closes: the descriptor's number may be the
            # next port's, and the event loop must not keep a stale watch on it.
            asyncio.get_running_loop().remove_writer(fd)
            room.set_exception(ActionError(f"{self.name}: {why} in the middle of a write"))

    @property
    def awaiting(self) -> bool:
        """A transact waits for its reply: the next frame is its."""
        return self._reply is not None and not self._reply.done()

    def take_reply(self, frames: list[bytes]) -> list[bytes]:
        """Hand the first of ``frames`` to the waiting transact; the rest, to parse."""
        reply = self._reply
        if not frames or reply is None or reply.done():
            return frames
        reply.set_result(frames[0])
        return frames[1:]

    # --- the transact ---------------------------------------------------------------------

    async def transact(self, frame: bytes, reply_timeout: float | None) -> bytes | None:
        if reply_timeout is not None and not reply_timeout > 0:
            raise ValueError(f"reply_timeout must be positive, not {reply_timeout!r}")
        async with self.lock:
            fd = self._fd
            if fd is None:
                raise ActionError(f"{self.name}: port {self._path or '(not yet opened)'} not open")
            await self._write_all(fd, frame)
            self.health.tally("writes")
            if reply_timeout is None:
                return None
            # Set at once after the last byte went out, with no await between: a frame
            # the read loop cuts from now on is the reply.
            reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._reply = reply
            try:
                async with asyncio.timeout(reply_timeout):
                    return await reply
            except TimeoutError:
                self.health.tally("write_timeouts")
                raise ActionError(
                    f"{self.name}: no reply within {reply_timeout:g} s to {_shown(frame)}"
                ) from None
            finally:
                self._reply = None

    async def _write_all(self, fd: int, frame: bytes) -> None:
        """Write every byte of ``frame``; a port that takes them too slowly (flow control)
        or fails raises ``ActionError``. After a partial write the rest goes when the
        port has room (a frame cut short is garbage to the device), without blocking
        the event loop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITE_SLACK + len(frame) * 11 / self._baudrate
        view = memoryview(frame)
        while True:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                pass
            except OSError as exc:
                message = f"write to {self._path} failed: {exc}"
                self._device_failed(message)
                raise ActionError(f"{self.name}: {message}") from None
            if not view:
                return
            room: asyncio.Future[None] = loop.create_future()
            self._room = room
            loop.add_writer(fd, _wake, room)
            try:
                async with asyncio.timeout_at(deadline):
                    await room
            except TimeoutError:
                self.health.tally("write_timeouts")
                raise ActionError(
                    f"{self.name}: {self._path} took {len(frame) - len(view)} of "
                    f"{len(frame)} bytes and no more (flow control holding the port?)"
                ) from None
            finally:
                self._room = None
                if self._fd == fd:  # else ``closed`` unwatched it
                    loop.remove_writer(fd)


def _wake(room: asyncio.Future[None]) -> None:
    if not room.done():
        room.set_result(None)


def _shown(frame: bytes) -> str:
    return repr(frame) if len(frame) <= 32 else repr(frame[:29]) + "..."
