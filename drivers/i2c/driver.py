"""The ``i2c`` driver's runtime: each device read at its interval, on one bus.

The schema, and what a user writes, are in ``tidegate.drivers.i2c.config``; the
chip profiles in ``tidegate.drivers.i2c.chips``.

Bus I/O blocks (smbus2 is ioctls), so it never runs on the event loop: every
step of a profile (a few transactions) runs on the driver's own one-thread
executor, and a chip's conversion time is an ``asyncio.sleep`` between steps.
One thread per bus also serialises the transactions, which ``SMBus`` needs (it
keeps the current slave address between its ``ioctl`` calls); while one chip
converts, the others are read. Closing the bus is queued on the same thread, so
it happens after a step that a cancellation left running.

Each device has its own loop. Every NACK is counted (``nack``) and retried at
the device's interval; a chip is marked stale (one driver error per outage)
after ``STALE_AFTER`` failed reads in a row, so one glitch on the wire does not
flip it down and up. When the chip answers again it is set up anew (calibration
read again: it may have been power-cycled). A bad reading (CRC, a conversion
that never finished) is rejected with its bytes and counted each time; the
device's ``last_error`` says why, and ``STALE_AFTER`` of them in a row mark it
stale too: a chip that only sends garbage is not "up". The wrong chip at the
address is stale at once (no glitch makes a chip id). An adapter that goes away
ends the session: every device is marked stale with the bus's message, and the
bus is reopened with the ``reconnect:`` backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from tidegate.backoff import Backoff
from tidegate.driver import Driver, DriverContext, DriverState, Emit
from tidegate.drivers.i2c.bus import (
    STUCK_HINT,
    is_bus_lost,
    is_nack,
    is_stuck,
    open_failure,
    open_real,
)
from tidegate.drivers.i2c.chips.base import BadReading, Bus, Chip, Measurement, Reading, WrongChip
from tidegate.drivers.i2c.config import SIM_BUS, I2cConfig
from tidegate.drivers.i2c.devices import Device
from tidegate.drivers.i2c.profiles import chip_for
from tidegate.drivers.i2c.sim_bus import SimulatedBus
from tidegate.event import Event, new_event

log = logging.getLogger("tidegate.drivers.i2c")

T = TypeVar("T")

NACK = "no answer (NACK)"

STALE_AFTER = 3
"""Failed reads in a row (NACK, I/O error, bad reading) that mark a device stale."""


class _BusLost(Exception):
    """The adapter failed under us; the message says how."""


class _Outage:
    """One device's failed reads in a row, and the reason it was marked stale for."""

    __slots__ = ("down", "in_a_row", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.in_a_row = 0
        self.down: str | None = None
        """What the device was marked stale for (its error, or the kind of bad
        reading); None while it is not."""

    def clear(self) -> None:
        self.in_a_row = 0
        self.down = None


def _step(measurement: Measurement) -> tuple[bool, Any]:
    """Run a measurement to its next wait: (False, seconds) or (True, readings).
    StopIteration cannot cross a future, so it ends here."""
    try:
        return False, next(measurement)
    except StopIteration as done:
        return True, done.value


def _close_opened(opening: Future[Bus]) -> None:
    """Close the bus an abandoned open produced (runs on the bus thread, after it)."""
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


class I2cDriver(Driver[I2cConfig]):
    """Reads the chips on one I²C bus; see ``tidegate.drivers.i2c.config``."""

    def __init__(
        self,
        config: I2cConfig,
        context: DriverContext,
        *,
        bus: Callable[[], Bus] | None = None,
    ) -> None:
        """``bus`` opens the bus instead of the config's (tests pass a ``SimulatedBus``
        opener); it is called in the driver's thread."""
        super().__init__(config, context)
        self.chips: dict[str, tuple[Device, Chip]] = {
            d.name: (d, chip_for(d)) for d in config.devices
        }
        self.sim_bus: SimulatedBus | None = None
        """With ``bus: sim``: the simulated bus, made at the first open."""
        self._opener = bus if bus is not None else self._open_configured
        self.backoff = Backoff(config.reconnect)
        self._executor: ThreadPoolExecutor | None = None
        self._tags = {name: {"device": name} for name in self.chips}

    def _open_configured(self) -> Bus:
        if self.config.bus != SIM_BUS:
            return open_real(self.config.bus)
        if self.sim_bus is None:
            from tidegate.drivers.i2c.sim_population import (  # noqa: PLC0415 - sim only
                simulated_bus,
            )

            self.sim_bus = simulated_bus(self.config)
        self.sim_bus.open()
        return self.sim_bus

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # --- the bus ------------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"i2c-{self.name}")
        failing = False  # within a streak of failures, only the first one is counted
        try:
            while True:
                try:
                    bus = await self._open()
                except OSError as exc:
                    self._bus_failed(open_failure(self.config.bus, exc), first=not failing)
                    failing = True
                else:
                    failing = False
                    self.backoff.reset()
                    self.health.set_state(DriverState.RUNNING)
                    log.info("%s: bus %s open", self.name, self.config.bus)
                    try:
                        await self._session(bus, emit)
                    except* _BusLost as lost:  # from a device's task, in the task group's group
                        self._bus_failed(str(lost.exceptions[0]), first=True)
                        failing = True
                    finally:
                        # Queued behind any step a cancellation left running.
                        self._executor.submit(bus.close)
                await asyncio.sleep(self.backoff.next_delay())
        finally:
            self._executor.shutdown(wait=False)
            self.health.set_state(DriverState.STOPPED)

    async def _open(self) -> Bus:
        assert self._executor is not None
        opening = self._executor.submit(self._opener)
        try:
            return await asyncio.wrap_future(opening)
        except asyncio.CancelledError:
            # Cancelled while the thread opens it: close what it opened, after it.
            self._executor.submit(_close_opened, opening)
            raise

    def _bus_failed(self, message: str, *, first: bool) -> None:
        if first:
            log.warning("%s: %s; retrying", self.name, message)
        self.health.reconnecting(message, first=first)
        self.health.devices_unreachable(self.chips, message)  # no bus, no chip answers

    async def _session(self, bus: Bus, emit: Emit) -> None:
        """Read every device until the bus is lost (``_BusLost``) or we are cancelled."""
        async with asyncio.TaskGroup() as group:
            for name in self.chips:
                group.create_task(self._device_loop(name, bus, emit), name=f"{self.name}-{name}")

    # --- one device ---------------------------------------------------------------------

    async def _device_loop(self, name: str, bus: Bus, emit: Emit) -> None:
        device, chip = self.chips[name]
        loop = asyncio.get_running_loop()
        period = self.config.interval_of(device)
        ready = False
        outage = _Outage(name)
        due = loop.time()
        while True:
            try:
                if not ready:
                    await self._in_thread(chip.setup, bus)
                    ready = True
                readings = await self._measure(chip, bus)
            except OSError as exc:
                if is_bus_lost(exc):
                    raise _BusLost(f"bus {self.config.bus}: {exc.strerror or exc}") from None
                ready = False
                self.health.tally("nack" if is_nack(exc) else "io_error")
                self._failed(outage, self._io_error(exc))
            except WrongChip as exc:
                ready = False
                self.health.tally("wrong_chip")
                self._failed(outage, str(exc), at_once=True)
            except BadReading as exc:
                self._bad_reading(name, exc)
                self._failed(outage, exc.reason, counted=True, kind=exc.counter)
            except Exception as exc:  # a profile's bug must not stop the other devices
                log.exception("%s: %s: unexpected error", self.name, name)
                ready = False
                self.health.tally("error")
                self._failed(outage, f"unexpected error: {exc!r}", at_once=True)
            else:
                if outage.down is not None:
                    log.info("%s: %s answers again", self.name, name)
                outage.clear()
                self.health.device_answered(name)
                await self._publish(name, readings, emit)
            due += period
            now = loop.time()
            due = max(due, now)  # late (a long emit): read now, then keep the period from here
            await asyncio.sleep(due - now)

    def _io_error(self, exc: OSError) -> str:
        if is_nack(exc):
            return NACK
        if is_stuck(exc):
            return f"bus {self.config.bus}: {exc.strerror or exc}: {STUCK_HINT}"
        return f"I/O error: {exc.strerror or exc}"

    async def _measure(self, chip: Chip, bus: Bus) -> list[Reading]:
        measurement = chip.measure(bus)
        done = False
        try:
            while True:
                done, result = await self._in_thread(_step, measurement)
                if done:
                    readings: list[Reading] = result
                    return readings
                await asyncio.sleep(result)
        except asyncio.CancelledError:
            raise  # the generator may be suspended (or its step still running)
        except Exception:
            done = True  # a step that raised has ended the generator
            raise
        finally:
            if not done and self._executor is not None:
                # Given up half-way (cancelled): closed on the bus thread, after its step.
                self._executor.submit(measurement.close)

    def _failed(self, outage: _Outage, error: str, *, at_once: bool = False,
                counted: bool = False, kind: str | None = None) -> None:
        """A failed read of a device: its ``last_error`` says why at once; it is stale
        (one driver error per outage, again when the reason changes) after
        ``STALE_AFTER`` in a row, or ``at_once``. ``counted``: the failure already
        counted a driver error (a reject), so going stale adds none. ``kind``: what
        makes two failures the same outage, when their messages differ (each bad
        CRC names its bytes)."""
        device = self.health.device(outage.name)
        device.last_error = error
        outage.in_a_row += 1
        if not at_once and outage.in_a_row < STALE_AFTER:
            return
        if outage.down == (kind or error):
            return  # the same outage goes on
        outage.down = kind or error
        log.warning("%s: %s: %s", self.name, outage.name, error)
        if counted:
            device.stale = True
        else:
            self.health.device_failed(outage.name, error, stale=True)

    def _bad_reading(self, name: str, exc: BadReading) -> None:
        """The chip answered with bytes that are no reading: rejected, counted."""
        reason = f"{name}: {exc.reason}"
        self.health.tally(exc.counter)
        self.health.set_state(self.health.state, reason)
        self.context.reject(exc.raw or b"\x00", reason)

    async def _publish(self, name: str, readings: list[Reading], emit: Emit) -> None:
        tags = self._tags[name]
        events: list[Event] = [
            new_event(self.name, f"{name}.{r.quantity}", r.value, unit=r.unit, tags=tags)
            for r in readings
        ]
        if events:
            await emit(events)
            self.health.count(len(events))
