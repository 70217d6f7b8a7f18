"""The ``serial`` driver's runtime: reading frames from a port, reopening it when it fails.

The schema, and what a user writes, are in ``tidegate.drivers.serial.config``.

How it reads: the port is opened non-blocking (``timeout=0``) and its descriptor
is watched with ``loop.add_reader``; on readiness everything waiting is read in one
call and split. ``readline()`` would cost a system call per byte (~166 µs a line on
a pty against ~0.3 µs for read-and-split), and polling would burn CPU on an idle
port. The frames of one read go to ``emit`` as one batch, stamped with the time
the read completed.

Writes for actions (``transact``: a frame out, optionally its reply back) are
``tidegate.drivers.serial.writes``; they and the ``poll:`` requests take turns on
one lock, so that a request's response window is never another's.

Reopening waits as ``reconnect:`` says (``tidegate.backoff``); a session that
received data before it failed starts the waits again from ``initial_delay``. With
``port: sim`` the driver starts the simulated device (``tidegate.drivers.serial.sim``)
and reads its pty by path like any port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import time
from collections.abc import Callable

import serial

from tidegate.backoff import Backoff
from tidegate.driver import Driver, DriverContext, DriverState, Emit
from tidegate.drivers.framing.lines import make_framer
from tidegate.drivers.parsing.parse import FrameParser, FrameRejected, FrameSkipped, TimeReport
from tidegate.drivers.serial.commands import command_bytes
from tidegate.drivers.serial.config import SIM_PORT, SerialConfig
from tidegate.drivers.serial.sim import SerialSim, SimDeviceError
from tidegate.drivers.serial.writes import PortWrites
from tidegate.event import Event

log = logging.getLogger("tidegate.drivers.serial")

_PARITY = {
    "none": serial.PARITY_NONE,
    "even": serial.PARITY_EVEN,
    "odd": serial.PARITY_ODD,
    "mark": serial.PARITY_MARK,
    "space": serial.PARITY_SPACE,
}


class _DeviceLost(Exception):
    """The port failed under us; the message says how."""


class SerialDriver(Driver[SerialConfig]):
    """Reads frames from a serial port and emits their events."""

    def __init__(self, config: SerialConfig, context: DriverContext) -> None:
        super().__init__(config, context)
        self.framer = make_framer(config.framing, self._reject)
        self.parser = FrameParser(
            config.parse, config.name, TimeReport(config.name, self.health.tally)
        )
        self.frames = 0
        """Complete frames received (parsed or not)."""
        self.rejects = 0
        """Frames and byte runs handed to ``context.reject``."""
        self.missed_responses = 0
        """Poll requests that got no frame back within ``response_timeout``."""
        self.opens = 0
        """Successful opens of the port (1 + reconnects)."""
        self.backoff = Backoff(config.reconnect)
        self.retry_delay = 0.0
        """The last wait before a reopen attempt (grows while the device stays away)."""
        self.port_path = config.port
        """The path opened last: ``port``, or with ``port: sim`` the simulated device's pty."""
        self._failure: _DeviceLost | None = None
        self._received_in_session = False
        self._wakeup: asyncio.Future[bool] | None = None
        self._watched: int | None = None
        self._response = asyncio.Event()
        self.writes = PortWrites(self.name, self.health, self._fail)
        """The write side: ``transact`` and the lock it shares with ``poll:``."""

    # --- writes for actions ------------------------------------------------------------

    async def transact(self, frame: bytes, *, reply_timeout: float | None = None) -> bytes | None:
        """Write ``frame`` to the open port; with ``reply_timeout`` (seconds), return the
        next complete frame the driver's framing cuts after the write.

        That reply goes to the caller only: it is not parsed and never becomes an event
        (it does count in ``frames``). Writes take turns with ``poll:`` requests and
        other transacts: this waits while a poll request waits for its response.
        Counted in ``health.counters``: ``writes`` (frames written) and
        ``write_timeouts`` (no reply in time, or a port that would not take the bytes).

        Raises ``ActionError`` when the port is not open (the device is away, or the
        driver is not running), when writing fails, or when no reply comes within
        ``reply_timeout`` (or the device goes away first).
        """
        return await self.writes.transact(frame, reply_timeout)

    def _fail(self, message: str) -> None:
        """A write found the device gone: the read loop ends the session and reconnects."""
        if self._failure is None:
            self._failure = _DeviceLost(message)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(True)

    # --- rejects and health -----------------------------------------------------------

    def _reject(self, raw: bytes, reason: str) -> None:
        self.rejects += 1
        self.health.set_state(self.health.state, reason)
        self.context.reject(raw, reason)

    def _device_failed(self, message: str, *, first: bool) -> None:
        if first:
            log.warning("%s: %s; reconnecting", self.name, message)
        self.health.reconnecting(message, first=first)  # one unplug is one error

    # --- the device ---------------------------------------------------------------------

    def _open(self) -> serial.Serial:
        cfg = self.config
        port = serial.Serial()  # no port yet: configure first, then open once
        port.port = self.port_path
        port.baudrate = cfg.baudrate
        port.bytesize = cfg.bytesize
        port.parity = _PARITY[cfg.parity]
        port.stopbits = cfg.stopbits
        port.xonxoff = cfg.flow_control == "xonxoff"
        port.rtscts = cfg.flow_control == "rtscts"
        port.dsrdtr = cfg.flow_control == "dsrdtr"
        port.timeout = 0
        port.write_timeout = 0
        port.exclusive = cfg.exclusive
        if cfg.rts is not None:
            port.rts = cfg.rts
        if cfg.dtr is not None:
            port.dtr = cfg.dtr
        port.open()
        return port

    def _write(self, port: serial.Serial, command: bytes) -> None:
        # os.write on the non-blocking descriptor: pyserial's write with write_timeout=0
        # spins on EAGAIN, and a blocking write would stall the event loop.
        try:
            written = os.write(port.fileno(), command)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            raise _DeviceLost(f"write to {self.port_path} failed: {exc}") from None
        if written < len(command):
            self.health.set_state(
                self.health.state,
                f"output buffer full: wrote {written} of {len(command)} command bytes",
            )

    def _on_readable(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:
            # The read loop is suspended in emit (backpressure): stop watching, or this
            # level-triggered callback would fire on every loop turn until it reads.
            self._stop_watching()
        elif not wakeup.done():
            wakeup.set_result(True)

    def _stop_watching(self) -> None:
        if self._watched is not None:
            asyncio.get_running_loop().remove_reader(self._watched)
            self._watched = None

    async def _readable(self, fd: int, quiet_for: float | None) -> bool:
        """Wait until ``fd`` has input (or a hangup) or a poll write failed: True;
        or until ``quiet_for`` seconds pass without either: False."""
        if self._failure is not None:
            return True
        loop = asyncio.get_running_loop()
        if self._watched is None:
            # Registered once per session, not per read: registering a tty with epoll
            # costs more than the rest of a one-line read.
            loop.add_reader(fd, self._on_readable)
            self._watched = fd
        wakeup: asyncio.Future[bool] = loop.create_future()
        self._wakeup = wakeup
        timer = None
        if quiet_for is not None:
            timer = loop.call_later(
                quiet_for, lambda: None if wakeup.done() else wakeup.set_result(False)
            )
        try:
            return await wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    # --- the run loop -------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        if self.config.port != SIM_PORT:
            await self._run_port(emit, lambda: self.config.port)
            return
        # The simulated device writes into a pty; everything below reads its slave side
        # through pyserial exactly as it reads /dev/ttyUSB0.
        device = SerialSim(self.config.simulated_device())
        device.open()
        player = asyncio.create_task(device.run(), name=f"{self.name}-simulated-device")
        player.add_done_callback(self._device_stopped)
        try:
            await self._run_port(emit, lambda: device.path)
        finally:
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await player
            device.close()

    def _device_stopped(self, player: asyncio.Task[None]) -> None:
        if not player.cancelled() and player.exception() is not None:
            log.error("%s: the simulated device failed: %r", self.name, player.exception())
            self.health.set_state(self.health.state, f"simulated device: {player.exception()!r}")

    async def _run_port(self, emit: Emit, where: Callable[[], str]) -> None:
        """Open the port ``where`` names (asked anew at each attempt) and read it; reopen
        with backoff when it fails; until cancelled."""
        self.backoff.reset()
        failing = False  # within a streak of failures, only the first one is counted
        try:
            while True:
                try:
                    self.port_path = where()
                    port = self._open()
                except (OSError, ValueError, termios.error, SimDeviceError) as exc:
                    message = f"cannot open {self.port_path}: {exc}"
                    self._device_failed(message, first=not failing)
                    failing = True
                else:
                    self.opens += 1
                    failing = False
                    log.info("%s: opened %s", self.name, self.port_path)
                    self.health.set_state(DriverState.RUNNING)
                    try:
                        await self._session(port, emit)
                    except _DeviceLost as exc:
                        partial = self.framer.flush()
                        if partial:
                            self._reject(partial, "incomplete frame when the device went away")
                        # Last, so that last_error says why we are reconnecting.
                        self._device_failed(str(exc), first=True)
                        failing = True
                        if self._received_in_session:
                            # It worked for a while: a new unplug starts a new backoff.
                            self.backoff.reset()
                    finally:
                        with contextlib.suppress(Exception):
                            port.close()
                self.retry_delay = self.backoff.next_delay()
                await asyncio.sleep(self.retry_delay)
        finally:
            self.health.set_state(DriverState.STOPPED)

    async def _session(self, port: serial.Serial, emit: Emit) -> None:
        """Read until the device fails (raises ``_DeviceLost``) or we are cancelled."""
        self._failure = None
        self._received_in_session = False
        poll = self.config.poll
        poller: asyncio.Task[None] | None = None
        try:
            if poll is not None:
                for command in poll.on_open:
                    self._write(port, command_bytes(command))
                if poll.request is not None and poll.every is not None:
                    poller = asyncio.create_task(
                        self._poll(port, command_bytes(poll.request), poll.every,
                                   poll.response_timeout),
                        name=f"{self.name}-poll",
                    )
            self.writes.opened(port.fileno(), self.port_path, self.config.baudrate)
            await self._read_loop(port, emit)
        finally:
            self.writes.closed(f"{self.port_path} closed")
            self._stop_watching()
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller

    async def _read_loop(self, port: serial.Serial, emit: Emit) -> None:
        fd = port.fileno()
        framer = self.framer
        frame_timeout = self.config.framing.frame_timeout
        last_byte = time.monotonic()
        while True:
            quiet_limit = None
            if frame_timeout is not None and framer.pending():
                quiet_limit = max(0.0, last_byte + frame_timeout - time.monotonic())
            if not await self._readable(fd, quiet_limit):
                await self._frames(
                    framer.expire(f"incomplete frame: no byte for {frame_timeout:g} s"),
                    time.time(),
                    emit,
                )
                continue
            if self._failure is not None:
                raise self._failure
            try:
                data: bytes = port.read(port.in_waiting or 4096)
            except (OSError, termios.error) as exc:
                raise _DeviceLost(f"read from {self.port_path} failed: {exc}") from None
            if not data:
                continue  # epoll can report a tty readable before its data is there
            self._received_in_session = True
            now = time.time()
            if frame_timeout is not None:
                # The loop may have been too busy for the timer to fire in time.
                mono = time.monotonic()
                if mono - last_byte > frame_timeout and framer.pending():
                    await self._frames(
                        framer.expire(f"incomplete frame: no byte for {frame_timeout:g} s"),
                        now,
                        emit,
                    )
                last_byte = mono
            await self._frames(framer.feed(data), now, emit)

    async def _frames(self, frames: list[bytes], now: float, emit: Emit) -> None:
        """Parse the frames of one read and emit their events as one batch."""
        if not frames:
            return
        self.frames += len(frames)
        self._response.set()
        if self.writes.awaiting:  # a transact's reply: the caller's, not an event
            frames = self.writes.take_reply(frames)
        parser = self.parser
        batch: list[Event] = []
        for frame in frames:
            try:
                batch += parser.parse(frame, now)
            except FrameSkipped:  # another kind of record (`select:`): not damage
                self.health.tally("skipped")
            except FrameRejected as exc:
                self._reject(frame, str(exc))
            except Exception as exc:  # a parser bug must not take the port down
                log.exception("%s: parser failed on %r", self.name, frame[:64])
                self._reject(frame, f"parser error: {exc!r}")
        if batch:
            await emit(batch)
            self.health.count(len(batch))

    async def _poll(
        self, port: serial.Serial, request: bytes, every: float, response_timeout: float
    ) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            async with self.writes.lock:  # the response window is this request's alone
                self._response.clear()
                try:
                    self._write(port, request)
                except _DeviceLost as exc:
                    self._fail(str(exc))
                    return
                try:
                    # Not wait_for: on 3.11 a cancellation that comes as the response
                    # arrives is lost, and this loop (and the driver's stop) would go on.
                    async with asyncio.timeout(response_timeout):
                        await self._response.wait()
                except TimeoutError:
                    self.missed_responses += 1
                    self.health.set_state(
                        self.health.state,
                        f"no response within {response_timeout:g} s to request {request[:32]!r}",
                    )
            due += every
            # A stalled loop skips the missed ticks instead of firing them in a burst.
            due = max(due, loop.time())
            await asyncio.sleep(due - loop.time())

