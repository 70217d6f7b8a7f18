"""Opening a bus, and what its errors mean.

A real bus is ``smbus2.SMBus`` on ``/dev/i2c-N``; ``bus: sim`` is a
``SimulatedBus``. Linux reports a chip that does not acknowledge its address as
``EREMOTEIO`` (the Pi's i2c-bcm2835) or ``ENXIO`` (other adapters): that chip is
absent or busy, the bus is fine. An adapter that went away (``ENODEV``) or a
closed descriptor (``EBADF``) means the bus itself must be reopened.
"""

from __future__ import annotations

import errno

from smbus2 import SMBus

from tidegate.drivers.i2c.chips.base import Bus

NACK_ERRNOS = frozenset({errno.EREMOTEIO, errno.ENXIO})
BUS_LOST_ERRNOS = frozenset({errno.ENODEV, errno.EBADF, errno.ENOENT})

ENABLE_HINT = (
    "enable I²C: `dtparam=i2c_arm=on` in /boot/firmware/config.txt "
    "(or `sudo raspi-config nonint do_i2c 0`), then reboot"
)


def bus_path(bus: int | str) -> str:
    """``1`` → ``/dev/i2c-1``; a path stays as it is."""
    return f"/dev/i2c-{bus}" if isinstance(bus, int) else bus


def open_real(bus: int | str) -> Bus:
    """``SMBus`` on the bus (blocking: call it in a thread)."""
    smbus = SMBus()
    try:
        smbus.open(bus_path(bus))
    except OSError:
        smbus.close()  # open() leaves the descriptor open when its ioctl fails
        raise
    return smbus


def is_nack(exc: OSError) -> bool:
    return exc.errno in NACK_ERRNOS


def is_bus_lost(exc: OSError) -> bool:
    return exc.errno in BUS_LOST_ERRNOS


def open_failure(bus: int | str, exc: OSError) -> str:
    """One line saying why the bus did not open and what to do."""
    path = bus_path(bus)
    if isinstance(exc, FileNotFoundError):
        return f"{path} does not exist: {ENABLE_HINT}"
    if isinstance(exc, PermissionError):
        return f"no permission to open {path}: add the service's user to the `i2c` group"
    return f"cannot open {path}: {exc.strerror or exc}"
