"""Opening a bus, what its errors mean, and what to do about them: one place for
the ``i2c`` driver and ``tidegate devices``' probe.

A real bus is ``smbus2.SMBus`` on ``/dev/i2c-N``; ``bus: sim`` is a
``SimulatedBus``. Linux reports a chip that does not acknowledge its address as
``EREMOTEIO`` (the Pi's i2c-bcm2835) or ``ENXIO`` (other adapters): that chip is
absent or busy, the bus is fine. A timeout (``ETIMEDOUT``) or lost arbitration
(``EAGAIN``) on every transfer is a stuck bus: SDA or SCL held low by the wiring
or a hung chip. An adapter that went away (``ENODEV``) or a closed descriptor
(``EBADF``) means the bus itself must be reopened.

Opening is refused with ``EACCES`` when the user lacks the ``i2c`` group, with
``EPERM`` when a systemd unit's ``DevicePolicy=closed`` does not allow the
device (``DeviceAllow=char-i2c rw``), and with ``ENOTTY`` when the path is no
I²C adapter (a serial port, a plain file): each has its own one-line hint.

Light on purpose: smbus2 is imported only when a real bus is opened.
"""

from __future__ import annotations

import errno
import os
import pwd
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidegate.drivers.i2c.chips.base import Bus

NACK_ERRNOS = frozenset({errno.EREMOTEIO, errno.ENXIO})
"""An address nobody acknowledges (i2c-bcm2835: EREMOTEIO; i2c-algo-bit, i801: ENXIO)."""
ABSENT_ERRNOS = NACK_ERRNOS | {errno.EIO}
"""What a probe counts as "nobody there": a NACK, or EIO, which some adapters (USB
bridges, SMBus-only controllers) give for an address nobody acknowledges."""
STUCK_ERRNOS = frozenset({errno.ETIMEDOUT, errno.EAGAIN})
"""A transfer that timed out or lost arbitration: the bus, not one chip, is at fault."""
BUS_LOST_ERRNOS = frozenset({errno.ENODEV, errno.EBADF, errno.ENOENT})

CONFIG_TXT = "/boot/firmware/config.txt"
ENABLE_HINT = (
    "enable I²C: `sudo raspi-config nonint do_i2c 0` (or `dtparam=i2c_arm=on` in "
    f"{CONFIG_TXT} and `i2c-dev` in /etc/modules-load.d/i2c.conf), then reboot "
    "(hardware/onewire-i2c.md)"
)
DEVICE_ALLOW_HINT = (
    "the systemd unit's DevicePolicy does not allow it: the unit needs "
    "`DeviceAllow=char-i2c rw` (`sudo tidegate service install` writes it; "
    "hardware/onewire-i2c.md)"
)
NOT_AN_ADAPTER_HINT = "is not an I²C adapter (`tidegate devices` lists the buses)"
STUCK_HINT = (
    "the bus is stuck: SDA or SCL held low? check the wiring and pull-ups, "
    "power-cycle the chips"
)


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a name (a container)
        return str(os.geteuid())


def group_hint() -> str:
    """How to give the user this process runs as the ``i2c`` group."""
    user = _user()
    return (
        f"add user {user} to the `i2c` group (`sudo usermod -aG i2c {user}`), then log in "
        "again or restart the service (hardware/onewire-i2c.md)"
    )


def bus_path(bus: int | str) -> str:
    """``1`` → ``/dev/i2c-1``; a path stays as it is."""
    return f"/dev/i2c-{bus}" if isinstance(bus, int) else bus


def open_real(bus: int | str) -> Bus:
    """``SMBus`` on the bus (blocking: call it in a thread). Raises ``OSError``; never
    leaves a descriptor open when it does."""
    from smbus2 import SMBus  # noqa: PLC0415 - only a real bus needs it (`tidegate check`)

    smbus = SMBus()
    try:
        smbus.open(bus_path(bus))
    except OSError:
        smbus.close()  # open() leaves the descriptor open when its ioctl fails
        raise
    return smbus


def is_nack(exc: OSError) -> bool:
    return exc.errno in NACK_ERRNOS


def is_stuck(exc: OSError) -> bool:
    return exc.errno in STUCK_ERRNOS


def is_bus_lost(exc: OSError) -> bool:
    return exc.errno in BUS_LOST_ERRNOS


def open_problem(exc: OSError) -> str:
    """Why a bus did not open and what to do, without its path."""
    if isinstance(exc, FileNotFoundError):
        return f"does not exist: {ENABLE_HINT}"
    if exc.errno == errno.EPERM:
        return f"not permitted: {DEVICE_ALLOW_HINT}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {group_hint()}"
    if exc.errno == errno.ENOTTY:
        return NOT_AN_ADAPTER_HINT
    return f"cannot be opened: {exc.strerror or exc}"


def open_failure(bus: int | str, exc: OSError) -> str:
    """One line saying why the bus did not open and what to do."""
    return f"{bus_path(bus)} {open_problem(exc)}"
