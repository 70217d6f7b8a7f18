"""A simulated serial device on a real pseudo-terminal.

``SerialSim`` opens a pty pair: the "device" writes to the master side, and the
slave side is a real tty path that the ``serial`` driver opens with pyserial exactly
as it opens ``/dev/ttyUSB0``. With ``link`` set, the slave is also reachable
through a symlink that plays the part of ``/dev/serial/by-id/...``: an unplug
closes the pty and removes the link; a replug makes a new pty at the same link.
What it is (framing, parse, signals, faults) is ``sim_config``; the frames it
sends are ``sim_frames``.

Two ways to drive it:

- ``run()`` writes frames at ``rate``, injects faults at random, answers requests
  (``respond_to``) and unplugs on a schedule. The ``serial`` driver does this for
  ``port: sim``;
- tests call ``write_frame(values, fault=...)`` (synchronous, exact content),
  ``disconnect()`` and ``open()`` (an unplug and a replug).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import select
import time
import tty
from collections.abc import Mapping
from pathlib import Path

from tidegate.drivers.serial.commands import command_bytes
from tidegate.drivers.serial.sim_config import SerialSimConfig
from tidegate.drivers.serial.sim_frames import Fault, FrameMaker, SimValue
from tidegate.errors import TidegateError

__all__ = ["SerialSim", "SerialSimConfig", "SimDeviceError", "SimValue"]

_INPUT_KEEP = 4096


class SimDeviceError(TidegateError):
    """The simulated device could not be created or written."""


class SerialSim(FrameMaker):
    """A serial device on a pty, sending the frames of its ``FrameMaker``."""

    def __init__(self, config: SerialSimConfig) -> None:
        super().__init__(config)
        self.master: int | None = None
        self._slave: int | None = None
        self.slave_name: str | None = None
        self.responding = True
        """Answer requests (``respond_to``); tests turn it off to test timeouts."""
        self.frames_written = 0
        self.requests = 0
        """Requests (``respond_to``) seen from the host."""
        self.received = bytearray()
        """The last bytes the host wrote to the device, for tests."""
        self._request = command_bytes(config.respond_to) if config.respond_to is not None else None
        self._pending_input = bytearray()

    # --- the pty --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.master is not None

    @property
    def path(self) -> str:
        """What a driver opens: the link if there is one, else the pty's own name."""
        if self.config.link is not None:
            return self.config.link
        if self.slave_name is None:
            raise SimDeviceError("the simulated device is not plugged in")
        return self.slave_name

    def open(self) -> None:
        """Plug the device in: create the pty (and the link)."""
        if self.master is not None:
            return
        master, slave = os.openpty()
        # Raw mode: no echo back to the device, no line editing, no CR/LF translation.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        if self.config.link is not None:
            link = Path(self.config.link)
            link.parent.mkdir(parents=True, exist_ok=True)
            temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(self.slave_name)
            temporary.replace(link)  # atomic: a reader never sees a missing or half link

    def close(self) -> None:
        """Unplug: the pty goes away (the host's reads fail with EIO) and so does the link."""
        if self.config.link is not None:
            with contextlib.suppress(FileNotFoundError):
                Path(self.config.link).unlink()
        for fd in (self.master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self._slave = None
        self._pending_input.clear()

    def disconnect(self) -> None:
        self.close()

    def __enter__(self) -> SerialSim:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- frames -----------------------------------------------------------------------

    def write_frame(
        self,
        values: Mapping[str, SimValue] | None = None,
        *,
        fault: Fault | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> bytes:
        """Write ``count`` frames (optionally damaged) now; return the bytes written."""
        one = self.frame(values)
        data = (self.faulty(one, fault) if fault else one) * count
        self.write_bytes(data, timeout=timeout)
        self.frames_written += count
        return data

    def write_bytes(self, data: bytes, *, timeout: float = 5.0) -> None:
        """Write all of ``data``, waiting up to ``timeout`` for the host to read."""
        master = self.master
        if master is None:
            raise SimDeviceError("the simulated device is not plugged in")
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            try:
                view = view[os.write(master, view) :]
                continue
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise SimDeviceError(f"the host did not read {len(view)} bytes in {timeout} s")
            select.select([], [master], [], left)

    def _write_nowait(self, data: bytes) -> None:
        """Write what fits; like a UART without flow control, the rest is lost."""
        if self.master is None:
            return
        try:
            os.write(self.master, data)
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise

    # --- host -> device ---------------------------------------------------------------

    def _on_input(self) -> None:
        if self.master is None:
            return
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return
        self.received += data
        del self.received[:-_INPUT_KEEP]
        if self._request is None:
            return
        self._pending_input += data
        while True:
            found = self._pending_input.find(self._request)
            if found < 0:
                del self._pending_input[: -len(self._request)]
                return
            del self._pending_input[: found + len(self._request)]
            self.requests += 1
            if self.responding:
                self._write_nowait(self.frame())
                self.frames_written += 1

    # --- the simulation loop ----------------------------------------------------------

    async def run(self) -> None:
        """Be the device until cancelled: frames at ``rate``, faults, unplugs, replies."""
        loop = asyncio.get_running_loop()
        faults = self.config.faults
        self.open()
        watched: int | None = None
        started = loop.time()
        sent = 0
        unplug_every = faults.disconnect_every or math.inf
        next_unplug = started + unplug_every
        try:
            while True:
                if self.master != watched:
                    if watched is not None:
                        loop.remove_reader(watched)
                    watched = self.master
                    if watched is not None:
                        loop.add_reader(watched, self._on_input)
                now = loop.time()
                if now >= next_unplug:
                    if watched is not None:
                        loop.remove_reader(watched)
                        watched = None
                    self.disconnect()
                    await asyncio.sleep(faults.disconnect_for)
                    self.open()
                    next_unplug = loop.time() + unplug_every
                    continue
                if self._request is not None:
                    # Request/response device: replies come from _on_input.
                    await asyncio.sleep(min(next_unplug - now, 1.0))
                    continue
                due = int((now - started) * self.config.rate)
                if due > sent:
                    burst = [self.next_frame() for _ in range(min(due - sent, 1000))]
                    self._write_nowait(b"".join(burst))
                    self.frames_written += len(burst)
                    sent = due
                wait = (sent + 1) / self.config.rate - (loop.time() - started)
                await asyncio.sleep(max(0.0, min(wait, next_unplug - loop.time())))
        finally:
            if watched is not None:
                loop.remove_reader(watched)
