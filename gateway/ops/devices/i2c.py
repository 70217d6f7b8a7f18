"""I²C buses and the addresses that answer on them, for an ``i2c`` driver's
``bus:`` and ``address:``.

Each ``/dev/i2c-N`` node is a bus. Its addresses are probed like ``i2cdetect -y -r
N``: one read-byte transaction per address from 0x03 to 0x77 (0x00-0x02 and
0x78-0x7f are reserved), through smbus2; an address that acknowledges answered, a
NACK (EREMOTEIO, ENXIO; EIO on some adapters) means nobody is there, EBUSY means a
kernel driver owns the address (``UU`` in i2cdetect). A bus that times out
(ETIMEDOUT) or loses arbitration (EAGAIN) on ``STUCK_AFTER`` addresses in a row
is stuck (SDA or SCL held low): the probe stops there and says so, rather than
reporting "0 answering". A read-byte probe is harmless for the common sensor
chips; like i2cdetect, it can confuse some write-only parts.

The bus is opened, and its errors are told apart and explained, by the ``i2c``
driver's own code (``tidegate.drivers.i2c.bus``): the probe and the driver give
the same hint for the same fault.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tidegate.drivers.i2c.bus import (
    ABSENT_ERRNOS,
    ENABLE_HINT,
    STUCK_ERRNOS,
    STUCK_HINT,
    open_problem,
    open_real,
)
from tidegate.ops.devices.paths import SYSTEM, DevicePaths

FIRST, LAST = 0x03, 0x77
"""The addresses probed: the 7-bit range without the reserved ones at both ends."""

KNOWN_CHIPS: dict[int, str] = {
    0x23: "BH1750 (light)",
    0x5C: "BH1750 (light, ADDR high)",
    0x44: "SHT3x or SHT4x (temperature, humidity)",
    0x45: "SHT3x (temperature, humidity, ADDR high)",
    **{a: "ADS1115 (4-channel ADC)" for a in range(0x48, 0x4C)},
    0x76: "BME280/BMP280 (temperature, humidity, pressure)",
    0x77: "BME280/BMP280 (temperature, humidity, pressure; SDO high)",
}
"""What usually sits at an address (other chips share some of them: an SHT4x at 0x44
does not answer the ``sht3x`` profile's command)."""

STUCK_AFTER = 3
"""Timeouts in a row after which the probe calls the bus stuck and stops."""


class ProbeBus(Protocol):
    """What probing needs of an ``smbus2.SMBus`` (or a simulated bus)."""

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int: ...

    def close(self) -> None: ...


Opener = Callable[[int], ProbeBus]
"""Bus number -> an open bus; raises OSError when it cannot be opened."""


@dataclass(frozen=True, slots=True)
class I2cBus:
    path: str
    number: int
    answered: tuple[int, ...] = ()
    """Addresses that acknowledged the probe."""
    busy: tuple[int, ...] = ()
    """Addresses a kernel driver holds (not probed)."""
    problem: str | None = None
    """Why the bus was not probed."""
    known: dict[int, str] = field(default_factory=dict)
    """For each answering address, the chip usually found there."""


def smbus_opener(paths: DevicePaths) -> Opener:
    """Opens ``paths.dev``/i2c-N as the driver does (no descriptor left on failure)."""

    def open_bus(number: int) -> ProbeBus:
        return open_real(str(paths.dev / f"i2c-{number}"))

    return open_bus


class BusStuck(OSError):
    """Transfers time out address after address: the bus, not a chip, is at fault."""


def probe_bus(bus: ProbeBus) -> tuple[list[int], list[int]]:
    """The addresses that answer a read-byte, and those a kernel driver holds.
    ``BusStuck`` after ``STUCK_AFTER`` timeouts in a row; any other error (the
    node is no I²C adapter) is raised as it is."""
    answered, busy = [], []
    timeouts = 0
    for address in range(FIRST, LAST + 1):
        try:
            bus.read_byte(address)
        except OSError as exc:
            timeouts = timeouts + 1 if exc.errno in STUCK_ERRNOS else 0
            if timeouts >= STUCK_AFTER:
                raise BusStuck(exc.errno, f"{exc.strerror or exc} at 0x{address:02x}") from exc
            if exc.errno == errno.EBUSY:
                busy.append(address)
            elif exc.errno not in ABSENT_ERRNOS and exc.errno not in STUCK_ERRNOS:
                raise
            continue
        timeouts = 0
        answered.append(address)
    return answered, busy


def _probe(path: str, number: int, opener: Opener) -> I2cBus:
    try:
        bus = opener(number)
    except OSError as exc:
        return I2cBus(path, number, problem=open_problem(exc))
    try:
        answered, busy = probe_bus(bus)
    except BusStuck as exc:
        return I2cBus(path, number, problem=f"{exc.strerror}: {STUCK_HINT}")
    except OSError as exc:
        return I2cBus(path, number, problem=f"probe failed: {exc.strerror or exc}")
    finally:
        bus.close()
    known = {a: KNOWN_CHIPS[a] for a in answered if a in KNOWN_CHIPS}
    return I2cBus(path, number, tuple(answered), tuple(busy), known=known)


def find_i2c_buses(
    paths: DevicePaths = SYSTEM, opener: Opener | None = None
) -> tuple[list[I2cBus], list[str]]:
    """Every /dev/i2c-N bus with the addresses that answer; and notes."""
    nodes = sorted(
        (p for p in paths.dev.glob("i2c-*") if p.name[4:].isdigit()),
        key=lambda p: int(p.name[4:]),
    )
    if not nodes:
        return [], [f"no I²C bus: nothing matches {paths.dev}/i2c-*: {ENABLE_HINT}"]
    open_bus = opener if opener is not None else smbus_opener(paths)
    buses = [_probe(str(p), int(p.name[4:]), open_bus) for p in nodes]
    return buses, []
