r"""The ``serial`` driver: sensors on a serial port (UART, USB-serial adapter, RS-485).

It opens the port by path (prefer the stable ``/dev/serial/by-id/...`` names; see
``hardware/`` for udev rules), cuts the byte stream into frames (``framing:``),
parses each frame into events (``parse:``), optionally writes commands to
request/response sensors (``poll:``), and reopens the port with exponential backoff
when the device goes away (USB unplug, EIO, path gone). Bad bytes never stop it:
each rejected frame is counted in ``health.errors`` and handed to ``context.reject``
with its reason, and the framer picks up at the next frame.

```yaml
drivers:
  - name: weather                    # a station that answers "READ" with "T=21.5,H=40.2,P=1013.2"
    type: serial
    port: /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0
    baudrate: 9600                   # 8N1 unless bytesize/parity/stopbits say otherwise
    framing: {type: line, max_length: 256}
    parse:
      format: kv
      fields:
        T: {name: temperature, unit: "°C"}
        H: {name: humidity, unit: "%"}
        P: {name: pressure, unit: hPa}
      tags: {site: roof}
    poll:
      on_open: ["MODE KV\r\n"]
      request: "READ\r\n"
      every: 10s
      response_timeout: 1s
    reconnect: {initial_delay: 500ms, max_delay: 30s}

  - name: air                        # Plantower PMS5003 particulate sensor, active mode
    type: serial
    port: /dev/ttyAMA0
    baudrate: 9600
    framing:
      type: binary
      start: "42 4d"
      length: {offset: 2, size: 2, byte_order: big, adjust: 4}
      checksum: {type: sum16}        # big-endian sum of bytes 0..29, in bytes 30..31
      max_length: 64
    parse:
      format: struct
      byte_order: big
      fields:
        pm1_0: {offset: 10, type: u16, unit: "µg/m³"}
        pm2_5: {offset: 12, type: u16, unit: "µg/m³"}
        pm10: {offset: 14, type: u16, unit: "µg/m³"}

  - name: dust                       # Nova SDS011: AA C0, data, sum8, AB at 1 frame/s
    type: serial
    port: /dev/serial/by-id/usb-1a86_USB2.0-Serial-if00-port0
    framing: {type: binary, start: "aa c0", length: 10, checksum: {type: sum8, start: 2}, end: "ab"}
    parse:
      format: struct
      byte_order: little
      fields:                        # 0.1 µg/m³ steps: 123 -> 12.3, not 12.300000000000001
        pm2_5: {offset: 2, type: u16, scale: 0.1, unit: "µg/m³"}
        pm10: {offset: 4, type: u16, scale: 0.1, unit: "µg/m³"}
```

On a laptop, ``port: sim`` replaces the device with a simulated one on a
pseudo-terminal, and the driver reads the pty's slave path through exactly the same
pyserial code as a real port: the one ``port:`` line is the switch. The simulated
device (``_serial_sim``) speaks the driver's own ``framing`` and ``parse``, answers
``poll.request``, gives fields it knows by name or unit realistic values
(temperature about 21 °C, humidity about 45 %, pressure about 1013 hPa, PM about
12 µg/m³), and takes the rest from an optional ``sim:`` block, e.g.
``sim: {rate: 5, faults: {garbage: 0.01, disconnect_every: 5m}}`` (``rate``,
``signals``, ``template``, ``faults``, ``seed``, ``link``). With a real port the
``sim:`` block is ignored, so it can stay in the file.

How it reads: the port is opened non-blocking (``timeout=0``) and its descriptor
is watched with ``loop.add_reader``; on readiness everything waiting is read in one
call and split. ``readline()`` would cost a system call per byte (~166 µs a line on
a pty against ~0.3 µs for read-and-split), and polling would burn CPU on an idle
port. The frames of one read go to ``emit`` as one batch, stamped with the time
the read completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import time
from collections.abc import Callable
from typing import Literal

import serial
from pydantic import Field, field_validator, model_validator

from tidegate.config.types import Duration, Section
from tidegate.driver import Driver, DriverConfig, DriverContext, DriverState, Emit
from tidegate.drivers.framing.lines import FramingConfig, LineFraming, make_framer
from tidegate.drivers.parsing.parse import FrameParser, FrameRejected, ParseConfig
from tidegate.drivers.serial.commands import Command, HexCommand, command_bytes
from tidegate.drivers.serial.sim import (
    SerialSim,
    SerialSimConfig,
    SimDeviceError,
    SimDeviceOptions,
    check_encodable,
    typical_signals,
)
from tidegate.event import Event

log = logging.getLogger("tidegate.drivers.serial")

__all__ = ["DRIVER", "Command", "HexCommand", "SerialConfig", "SerialDriver", "command_bytes"]

SIM_PORT = "sim"
"""``port: sim``: read a simulated device on a pseudo-terminal instead of a real port."""

_PARITY = {
    "none": serial.PARITY_NONE,
    "even": serial.PARITY_EVEN,
    "odd": serial.PARITY_ODD,
    "mark": serial.PARITY_MARK,
    "space": serial.PARITY_SPACE,
}


class PollConfig(Section):
    """Commands for sensors that talk only when asked."""

    on_open: list[Command] = Field(
        default_factory=list, description="Written, in order, each time the port is opened."
    )
    request: Command | None = Field(None, description="Written every `every` seconds.")
    every: Duration | None = Field(None, gt=0, description="How often to write `request`.")
    response_timeout: Duration = Field(
        1.0,
        gt=0,
        description="A request not followed by a frame within this time counts as a missed "
        "response (a health error).",
    )

    @model_validator(mode="after")
    def _request_and_period(self) -> PollConfig:
        if (self.request is None) != (self.every is None):
            raise ValueError("`request` and `every` go together")
        if self.every is not None and self.response_timeout > self.every:
            raise ValueError("`response_timeout` must not be longer than `every`")
        return self


class ReconnectPolicy(Section):
    """How the driver retries a device that is missing or went away."""

    initial_delay: Duration = Field(0.5, gt=0, description="First wait before reopening.")
    max_delay: Duration = Field(30.0, gt=0, description="Longest wait between attempts.")
    factor: float = Field(
        2.0, ge=1.0, le=10.0, description="Each failed attempt multiplies the wait by this."
    )


class SerialConfig(DriverConfig):
    """A sensor on a serial port."""

    type: Literal["serial"] = Field("serial", description="Driver kind.")
    port: str = Field(
        min_length=1,
        description="Device path: /dev/ttyUSB0, /dev/ttyAMA0, or better a stable "
        "/dev/serial/by-id/... name; `sim` plays the device described by `sim:` on a "
        "pseudo-terminal and reads that like a real port.",
    )
    baudrate: int = Field(9600, gt=0, le=16_000_000, description="Bits per second.")
    bytesize: Literal[5, 6, 7, 8] = Field(8, description="Data bits per character.")
    parity: Literal["none", "even", "odd", "mark", "space"] = Field("none", description="Parity.")
    stopbits: float = Field(1, description="Stop bits: 1, 1.5 or 2.")
    flow_control: Literal["none", "rtscts", "xonxoff", "dsrdtr"] = Field(
        "none", description="Hardware (RTS/CTS, DSR/DTR) or software (XON/XOFF) flow control."
    )
    rts: bool | None = Field(
        None, description="Set RTS to this level on open (some sensors draw power from it)."
    )
    dtr: bool | None = Field(
        None, description="Set DTR to this level on open (some boards reset on DTR)."
    )
    exclusive: bool = Field(
        True, description="Lock the port so that no other program reads from it meanwhile."
    )
    framing: FramingConfig = Field(
        default_factory=LineFraming, description="How the byte stream is cut into frames."
    )
    parse: ParseConfig = Field(description="How each frame becomes events.")
    poll: PollConfig | None = Field(None, description="Commands written to the device.")
    reconnect: ReconnectPolicy = Field(
        default_factory=ReconnectPolicy, description="Backoff when the device is missing."
    )
    sim: SimDeviceOptions = Field(
        default_factory=SimDeviceOptions,
        description="The simulated device for `port: sim` (rate, signals, faults); it speaks "
        "this port's `framing` and `parse`. Ignored with a real port, so that switching "
        "between laptop and device is the one `port:` line.",
    )

    @model_validator(mode="after")
    def _simulation_possible(self) -> SerialConfig:
        if self.port == SIM_PORT:
            check_encodable(self.parse, self.sim.template, where="sim.template")
        return self

    def simulated_device(self) -> SerialSimConfig:
        """The device ``port: sim`` plays: the ``sim:`` block with this port's framing and
        parse, realistic signals for fields it does not list, and answers to ``poll``."""
        options = dict(self.sim)
        if options["respond_to"] is None and self.poll is not None:
            options["respond_to"] = self.poll.request
        device = SerialSimConfig.model_validate(
            {**options, "framing": self.framing, "parse": self.parse}
        )
        return device.model_copy(update={"signals": {**typical_signals(device), **device.signals}})

    @field_validator("stopbits")
    @classmethod
    def _known_stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("stop bits are 1, 1.5 or 2")
        return value


class _DeviceLost(Exception):
    """The port failed under us; the message says how."""


class SerialDriver(Driver):
    """Reads frames from a serial port and emits their events."""

    config_type = SerialConfig

    def __init__(self, config: DriverConfig, context: DriverContext) -> None:
        if not isinstance(config, SerialConfig):
            raise TypeError(f"SerialDriver needs a SerialConfig, got {type(config).__name__}")
        super().__init__(config, context)
        self.settings = config
        """``config``, typed as what it is."""
        self.framer = make_framer(config.framing, self._reject)
        self.parser = FrameParser(config.parse, config.name)
        self.frames = 0
        """Complete frames received (parsed or not)."""
        self.rejects = 0
        """Frames and byte runs handed to ``context.reject``."""
        self.missed_responses = 0
        """Poll requests that got no frame back within ``response_timeout``."""
        self.opens = 0
        """Successful opens of the port (1 + reconnects)."""
        self.retry_delay = config.reconnect.initial_delay
        """The wait before the next reopen attempt (grows while the device stays away)."""
        self.port_path = config.port
        """The path opened last: ``port``, or with ``port: sim`` the simulated device's pty."""
        self._failure: _DeviceLost | None = None
        self._received_in_session = False
        self._wakeup: asyncio.Future[bool] | None = None
        self._watched: int | None = None
        self._response = asyncio.Event()

    # --- rejects and health -----------------------------------------------------------

    def _reject(self, raw: bytes, reason: str) -> None:
        self.rejects += 1
        self.health.set_state(self.health.state, reason)
        self.context.reject(raw, reason)

    def _device_failed(self, message: str, *, first: bool) -> None:
        if first:
            log.warning("%s: %s; reconnecting", self.name, message)
            self.health.set_state(DriverState.RECONNECTING, message)
        else:
            # One unplug is one error, not one per retry; the message still stays current.
            self.health.set_state(DriverState.RECONNECTING)
            self.health.last_error = message

    # --- the device ---------------------------------------------------------------------

    def _open(self) -> serial.Serial:
        cfg = self.settings
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
        if self.settings.port != SIM_PORT:
            await self._run_port(emit, lambda: self.settings.port)
            return
        # The simulated device writes into a pty; everything below reads its slave side
        # through pyserial exactly as it reads /dev/ttyUSB0.
        device = SerialSim(self.settings.simulated_device())
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
        policy = self.settings.reconnect
        self.retry_delay = policy.initial_delay
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
                            self.retry_delay = policy.initial_delay
                    finally:
                        with contextlib.suppress(Exception):
                            port.close()
                await asyncio.sleep(self.retry_delay)
                self.retry_delay = min(self.retry_delay * policy.factor, policy.max_delay)
        finally:
            self.health.set_state(DriverState.STOPPED)

    async def _session(self, port: serial.Serial, emit: Emit) -> None:
        """Read until the device fails (raises ``_DeviceLost``) or we are cancelled."""
        self._failure = None
        self._received_in_session = False
        poll = self.settings.poll
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
            await self._read_loop(port, emit)
        finally:
            self._stop_watching()
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller

    async def _read_loop(self, port: serial.Serial, emit: Emit) -> None:
        fd = port.fileno()
        framer = self.framer
        frame_timeout = self.settings.framing.frame_timeout
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
        parser = self.parser
        batch: list[Event] = []
        for frame in frames:
            try:
                batch += parser.parse(frame, now)
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
            self._response.clear()
            try:
                self._write(port, request)
            except _DeviceLost as exc:
                self._failure = exc
                if self._wakeup is not None and not self._wakeup.done():
                    self._wakeup.set_result(True)
                return
            try:
                await asyncio.wait_for(self._response.wait(), response_timeout)
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


DRIVER = SerialDriver
