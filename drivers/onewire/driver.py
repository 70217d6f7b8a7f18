"""The ``onewire`` driver's runtime: read each sensor's ``w1_slave`` every interval.

The schema and what a user writes are in ``tidegate.drivers.onewire.config``; the
file format and the rejections in ``tidegate.drivers.onewire.sysfs``.

Reading ``w1_slave`` blocks for the conversion (~750 ms per sensor on real
hardware), so each read runs in a worker thread (``asyncio.to_thread``), one
sensor at a time: the bus converts one sensor at a time anyway, and a
cancelled driver leaves at most one read behind. The kernel's
``therm_bulk_read`` (one conversion for every sensor at once) would shorten a
cycle of many sensors, but is not used: it is missing on older kernels and
changes what a read of ``w1_slave`` returns.

A read the kernel could not make (an empty ``w1_slave``: newer kernels' way of
saying the sensor did not answer or its CRC failed five times) and a file that
cannot be read are counted (``read_failed``, ``read_error``) as device errors,
with no dead letter, since there is no text to keep.

Sensors are found by listing the bus folder each cycle (the ``<family>-<id>``
entries, the same set as ``w1_bus_master1/w1_master_slaves``), so a discovering
driver picks up a sensor plugged in while it runs. A sensor whose folder is gone
(ENOENT) or that the kernel removed mid-read (ENODEV, ENXIO) is marked stale once
and read again every cycle until it answers; a listed sensor that was never on
the bus is reported as not found, with the ids that are. A bus folder that is
missing altogether (the overlay not loaded, or a mistyped ``path:``) is looked for
again with ``reconnect``'s waits: one driver error per outage, and every sensor
stale with that message.

Each good reading is emitted as soon as it is read, so with many sensors the
first does not wait for the last, and stopping mid-cycle loses nothing read.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from tidegate.backoff import Backoff
from tidegate.driver import Driver, DriverContext, DriverState, Emit
from tidegate.drivers.onewire.config import SIM_PATH, OneWireConfig, SensorSpec, Unit
from tidegate.drivers.onewire.sim import W1Tree, simulate_bus, simulated_ids
from tidegate.drivers.onewire.sysfs import (
    DEFAULT_BUS,
    FAMILIES,
    OVERLAY_HINT,
    VANISHED_ERRNOS,
    Rejected,
    family_of,
    list_sensors,
    parse_w1_slave,
    read_w1_slave,
)
from tidegate.event import Event, new_event

_log = logging.getLogger(__name__)

STALE_AFTER = 3
"""Readings rejected in a row after which a sensor counts as stale, not just noisy."""


def convert(millidegrees: int, unit: Unit, scale: float = 1.0, offset: float = 0.0) -> float:
    """A reading in ``unit``, calibrated; rounded to 4 decimals, below the sensors'
    resolution, so that binary fractions do not show (21.537, not 21.537000000000003)."""
    celsius = millidegrees / 1000
    if unit == "°F":
        value = celsius * 9 / 5 + 32
    elif unit == "K":
        value = celsius + 273.15
    else:
        value = celsius
    return round(value * scale + offset, 4)


class OneWireDriver(Driver[OneWireConfig]):
    """Reads DS18B20-family sensors through the kernel's w1 sysfs files."""

    def __init__(self, config: OneWireConfig, context: DriverContext) -> None:
        super().__init__(config, context)
        self.listed: dict[str, SensorSpec] = {sensor.id: sensor for sensor in config.sensors}
        self.known: set[str] = set(self.listed)
        """Sensors read each cycle: the listed ones and every one discovered so far."""
        self.vanished: set[str] = set()
        self.not_found: set[str] = set()
        """Listed sensors reported as never on the bus (once each)."""
        self._seen: set[str] = set()
        """Sensors whose folder has been on the bus since the driver started."""
        self._present: list[str] = []
        """The folder names of the last listing."""
        self._bad_in_a_row: dict[str, int] = {}

    async def run(self, emit: Emit) -> None:
        try:
            async with self._bus() as base:
                await self._poll(base, emit)
        finally:
            self.health.set_state(DriverState.STOPPED)

    @contextlib.asynccontextmanager
    async def _bus(self) -> AsyncIterator[Path]:
        """The bus folder: the configured one, or a simulated bus for ``path: sim``."""
        if self.config.path != SIM_PATH:
            yield Path(self.config.path)
            return
        folder = Path(tempfile.mkdtemp(prefix=f"tidegate-w1-{self.name}-"))
        tree = W1Tree(folder)
        player = asyncio.create_task(
            simulate_bus(tree, simulated_ids(self.config), self.config.sim),
            name=f"{self.name}-simulated-bus",
        )
        _log.info("%s: simulated 1-Wire bus in %s", self.name, folder)
        try:
            # Inside the try: a cancel here still stops the player and removes the folder.
            await asyncio.sleep(0)  # let it write the first readings before the first cycle
            yield folder
        finally:
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await player
            shutil.rmtree(folder, ignore_errors=True)

    async def _poll(self, base: Path, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.config.reconnect)
        next_at = loop.time()
        outage: str | None = None  # the message of the bus outage going on, if any
        while True:
            try:
                present = await asyncio.to_thread(list_sensors, base)
            except OSError as exc:
                message = self._no_bus(base, exc)
                delay = backoff.next_delay()
                if message != outage:  # one error per outage, not one per look
                    outage = message
                    self.health.set_state(DriverState.RECONNECTING, message)
                    self.health.devices_unreachable(self.known, message)  # no bus, no readings
                    _log.warning("%s: %s; looking again in %.1fs", self.name, message, delay)
                else:
                    _log.debug("%s: still %s; looking again in %.1fs", self.name, message, delay)
                await asyncio.sleep(delay)
                next_at = loop.time()
                continue
            outage = None
            self.health.set_state(DriverState.RUNNING)
            backoff.reset()
            self._present = present
            self._seen.update(present)
            self._discover(present)
            for sensor_id in sorted(self.known):
                event = await self._read(base, sensor_id)
                if event is not None:  # at once: the next sensor takes another ~750 ms
                    await emit([event])
                    self.health.count(1)
            next_at = max(next_at + self.config.interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    def _no_bus(self, base: Path, exc: OSError) -> str:
        """What to tell the user when the bus folder cannot be listed."""
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            return f"cannot list {base}: {exc.strerror or exc}"
        if str(base) == DEFAULT_BUS:
            return f"no 1-Wire bus at {base}: {OVERLAY_HINT}"
        return f"no folder {base}: check `path:` (the kernel's 1-Wire bus is {DEFAULT_BUS})"

    def _discover(self, present: list[str]) -> None:
        if not self.config.discovers():
            return
        families = set(self.config.families)
        for sensor_id in present:
            if sensor_id not in self.known and family_of(sensor_id) in families:
                self.known.add(sensor_id)
                self.health.tally("discovered")
                self.health.device(sensor_id)
                _log.info("%s: found sensor %s", self.name, sensor_id)

    async def _read(self, base: Path, sensor_id: str) -> Event | None:
        """One sensor's reading as an event, or None (rejected, vanished, unreadable)."""
        try:
            text = await asyncio.to_thread(read_w1_slave, base / sensor_id)
        except OSError as exc:
            self._unreadable(sensor_id, exc)
            return None
        stamp = time.time()
        spec = self.listed.get(sensor_id)
        accept_85 = self.config.accept_85
        if spec is not None and spec.accept_85 is not None:
            accept_85 = spec.accept_85
        parsed = parse_w1_slave(
            text, accept_85=accept_85, family=family_of(sensor_id),
            limits=spec.limits() if spec is not None else None,
        )
        if isinstance(parsed, Rejected):
            if parsed.counter == "read_failed":  # nothing to keep as a dead letter
                self._failed(sensor_id, parsed.counter, parsed.reason)
            else:
                self._rejected(sensor_id, text, parsed)
            return None
        if sensor_id in self.vanished:
            self.vanished.discard(sensor_id)
            self.health.tally("returned")
            _log.info("%s: sensor %s is back", self.name, sensor_id)
        if sensor_id in self.not_found:
            self.not_found.discard(sensor_id)
            _log.info("%s: sensor %s found", self.name, sensor_id)
        self._bad_in_a_row.pop(sensor_id, None)
        self.health.device_answered(sensor_id)
        if spec is None:
            name, unit, value = sensor_id, self.config.unit, convert(
                parsed.millidegrees, self.config.unit
            )
        else:
            name, unit = spec.name or sensor_id, spec.unit
            value = convert(parsed.millidegrees, unit, spec.scale, spec.offset)
        return new_event(self.name, name, value, unit=unit, tags={"sensor": sensor_id},
                         time=stamp)

    def _rejected(self, sensor_id: str, text: str, rejected: Rejected) -> None:
        """Count a reading that must not be published, and keep its raw text."""
        reason = f"{sensor_id}: {rejected.reason}"
        self.health.tally(rejected.counter)
        self.health.set_state(self.health.state, reason)
        self.context.reject(text.encode("ascii", "replace"), reason)
        device = self.health.device(sensor_id)
        device.last_error = rejected.reason
        in_a_row = self._bad_in_a_row[sensor_id] = self._bad_in_a_row.get(sensor_id, 0) + 1
        if in_a_row >= STALE_AFTER:
            device.stale = True

    def _unreadable(self, sensor_id: str, exc: OSError) -> None:
        if exc.errno in VANISHED_ERRNOS:
            if sensor_id not in self._seen:
                self._never_there(sensor_id)
            elif sensor_id not in self.vanished:
                self.vanished.add(sensor_id)
                self.health.tally("vanished")
                self.health.device_failed(sensor_id, "vanished", stale=True)
                _log.warning("%s: sensor %s vanished from the bus", self.name, sensor_id)
            return
        self._failed(sensor_id, "read_error", f"cannot read w1_slave: {exc.strerror or exc}")

    def _never_there(self, sensor_id: str) -> None:
        """A listed sensor whose folder was never on the bus: most likely a typo in
        its id, so say which ids are there (once)."""
        if sensor_id in self.not_found:
            return
        self.not_found.add(sensor_id)
        self.health.tally("not_found")
        found = [i for i in self._present if family_of(i) in FAMILIES]
        there = f"found: {', '.join(found)}" if found else "no thermometer found"
        error = f"not on the bus ({there}; `tidegate devices` lists them)"
        self.health.device_failed(sensor_id, error, stale=True)
        _log.warning("%s: sensor %s is %s", self.name, sensor_id, error)

    def _failed(self, sensor_id: str, counter: str, error: str) -> None:
        """A read that gave nothing: counted, and stale after STALE_AFTER in a row."""
        self.health.tally(counter)
        in_a_row = self._bad_in_a_row[sensor_id] = self._bad_in_a_row.get(sensor_id, 0) + 1
        self.health.device_failed(sensor_id, error, stale=in_a_row >= STALE_AFTER)
