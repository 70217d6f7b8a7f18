"""Serial ports for ``port:``: pyserial's list joined with the stable names.

Serial ports come from pyserial's ``serial.tools.list_ports.comports()`` (device
node, USB VID:PID, product and serial number from sysfs), joined with the stable
names that point at them: the ``/dev/serial/by-id/*`` links udev makes for USB
adapters and Raspberry Pi OS's ``/dev/serial0``/``serial1`` aliases for the on-board
UARTs. A port that only such a link reveals is listed too: pyserial hides on-board
ports whose sysfs subsystem is ``platform``, which includes the Pi's mini UART
``/dev/ttyS0`` (pyserial issues #489 and #717).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from serial.tools import list_ports, list_ports_common, list_ports_linux

from tidegate.ops.devices.paths import SYSTEM, DevicePaths


@dataclass(frozen=True, slots=True)
class SerialPort:
    """One serial device node and what is known about it."""

    device: str
    """The node, e.g. /dev/ttyUSB0 (a name that can change between boots)."""
    by_id: tuple[str, ...] = ()
    """Stable /dev/serial/by-id names: use one of these in `port:`."""
    aliases: tuple[str, ...] = ()
    """Other links to it, e.g. /dev/serial0 on a Raspberry Pi."""
    vid: int | None = None
    pid: int | None = None
    description: str | None = None
    """Product or driver description, when sysfs has one."""
    manufacturer: str | None = None
    serial_number: str | None = None

    @property
    def usb_id(self) -> str | None:
        if self.vid is None or self.pid is None:
            return None
        return f"{self.vid:04x}:{self.pid:04x}"


Comports = Callable[[], Sequence[list_ports_common.ListPortInfo]]


def _links_in(folder: Path, pattern: str = "*") -> dict[str, list[str]]:
    """Symlinks in ``folder`` grouped by the device node they resolve to."""
    targets: dict[str, list[str]] = defaultdict(list)
    try:
        entries = sorted(folder.glob(pattern))
    except OSError:
        return targets
    for link in entries:
        if link.is_symlink():
            targets[os.path.realpath(link)].append(str(link))
    return targets


def _known(value: str | None) -> str | None:
    # pyserial says "n/a" where sysfs has nothing.
    return value if value and value != "n/a" else None


def find_serial_ports(
    paths: DevicePaths = SYSTEM, comports: Comports = list_ports.comports
) -> list[SerialPort]:
    """Serial ports pyserial lists, plus those only a by-id link or an alias reveals."""
    by_id = _links_in(paths.serial_by_id)
    aliases = _links_in(paths.dev, "serial[0-9]*")
    infos: dict[str, list_ports_common.ListPortInfo] = {}
    for info in comports():
        infos[os.path.realpath(info.device)] = info
    for target in [*by_id, *aliases]:
        if target not in infos:
            # sysfs details for a node pyserial does not list (or a test's pty).
            infos[target] = list_ports_linux.SysFS(target)
    ports = []
    for node, info in sorted(infos.items()):
        vid: int | None = info.vid
        pid: int | None = info.pid
        ports.append(
            SerialPort(
                device=node,
                by_id=tuple(by_id.get(node, ())),
                aliases=tuple(aliases.get(node, ())),
                vid=vid,
                pid=pid,
                description=_known(info.product) or _known(info.description),
                manufacturer=_known(info.manufacturer),
                serial_number=_known(info.serial_number),
            )
        )
    return ports
