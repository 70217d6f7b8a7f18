"""What ``tidegate devices`` finds: serial ports and GPIO chips, for ``port:`` and
``chip:``/``line:`` in a config.

Serial ports come from pyserial's ``serial.tools.list_ports.comports()`` (device
node, USB VID:PID, product and serial number from sysfs), joined with the stable
names that point at them: the ``/dev/serial/by-id/*`` links udev makes for USB
adapters and Raspberry Pi OS's ``/dev/serial0``/``serial1`` aliases for the on-board
UARTs. A port that only such a link reveals is listed too: pyserial hides on-board
ports whose sysfs subsystem is ``platform``, which includes the Pi's mini UART
``/dev/ttyS0`` (pyserial issues #489 and #717).

GPIO chips are the ``/dev/gpiochip*`` character devices; their lines (offset, name,
consumer) are read through libgpiod v2's Python bindings when ``gpiod`` is installed
(``tidegate[gpio]``). Without it, or without chips, the report says so and why.

Every /dev path is a parameter (``DevicePaths``), so tests can point the scan at a
temporary folder holding a pseudo-terminal.
"""

from __future__ import annotations

import importlib
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from serial.tools import list_ports, list_ports_common, list_ports_linux

from tidegate.wording import count

GPIO_INSTALL_HINT = "pip install 'tidegate[gpio]' (libgpiod v2 bindings)"


@dataclass(frozen=True, slots=True)
class DevicePaths:
    """Where to look; the defaults are the real system's."""

    dev: Path = Path("/dev")
    """Holds the Raspberry Pi UART aliases (serial0, serial1) and the gpiochip nodes."""
    serial_by_id: Path = Path("/dev/serial/by-id")
    """udev's stable names for USB serial adapters (see hardware/udev)."""


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


@dataclass(frozen=True, slots=True)
class GpioLine:
    offset: int
    name: str
    consumer: str
    used: bool


@dataclass(frozen=True, slots=True)
class GpioChip:
    path: str
    name: str = ""
    label: str = ""
    lines: tuple[GpioLine, ...] = ()
    problem: str | None = None
    """Why the lines are not listed (permission, missing bindings)."""


@dataclass(slots=True)
class DeviceReport:
    serial_ports: list[SerialPort] = field(default_factory=list)
    gpio_chips: list[GpioChip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Plain-language remarks: what is missing and what to do about it."""


# --- serial ----------------------------------------------------------------------------

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
    paths: DevicePaths = DevicePaths(), comports: Comports = list_ports.comports
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


# --- GPIO ------------------------------------------------------------------------------


def _import_gpiod() -> ModuleType | None:
    try:
        return importlib.import_module("gpiod")
    except ImportError:
        return None


def _chip_lines(gpiod: Any, path: str) -> GpioChip:
    try:
        with gpiod.Chip(path) as chip:
            info = chip.get_info()
            lines = tuple(
                GpioLine(
                    offset=int(line.offset),
                    name=str(line.name or ""),
                    consumer=str(line.consumer or ""),
                    used=bool(line.used),
                )
                for line in (chip.get_line_info(offset) for offset in range(info.num_lines))
            )
            return GpioChip(path, str(info.name), str(info.label), lines)
    except PermissionError:
        return GpioChip(
            path,
            problem="permission denied: run as root, or add the user to the `gpio` group "
            "(hardware/udev/99-tidegate.rules)",
        )
    except OSError as exc:
        return GpioChip(path, problem=f"cannot open: {exc.strerror or exc}")


def find_gpio_chips(
    paths: DevicePaths = DevicePaths(),
    import_gpiod: Callable[[], ModuleType | None] = _import_gpiod,
) -> tuple[list[GpioChip], list[str]]:
    """GPIO chips with their lines where libgpiod's bindings can read them; and notes."""
    nodes = sorted(
        (p for p in paths.dev.glob("gpiochip*") if p.name[8:].isdigit()),
        key=lambda p: int(p.name[8:]),
    )
    if not nodes:
        return [], [f"no GPIO chips: nothing matches {paths.dev}/gpiochip* on this machine"]
    gpiod = import_gpiod()
    if gpiod is None:
        return [GpioChip(str(p), problem="lines not listed") for p in nodes], [
            f"the gpiod module is not installed, so lines are not listed: {GPIO_INSTALL_HINT}"
        ]
    return [_chip_lines(gpiod, str(p)) for p in nodes], []


def scan_devices(
    paths: DevicePaths = DevicePaths(),
    comports: Comports = list_ports.comports,
    import_gpiod: Callable[[], ModuleType | None] = _import_gpiod,
) -> DeviceReport:
    report = DeviceReport(serial_ports=find_serial_ports(paths, comports))
    if not any(port.usb_id for port in report.serial_ports) and not any(
        port.by_id for port in report.serial_ports
    ):
        report.notes.append(
            f"no USB serial adapter: none is plugged in, or its driver is missing "
            f"({paths.serial_by_id} lists every one udev sees)"
        )
    report.gpio_chips, gpio_notes = find_gpio_chips(paths, import_gpiod)
    report.notes += gpio_notes
    return report


# --- text ------------------------------------------------------------------------------


def _describe_port(port: SerialPort) -> list[str]:
    facts = [
        fact
        for fact in (
            port.description,
            port.manufacturer,
            f"USB {port.usb_id}" if port.usb_id else None,
            f"serial number {port.serial_number}" if port.serial_number else None,
        )
        if fact
    ]
    head = f"  {port.device}"
    head += "  " + ", ".join(facts) if facts else "  (no hardware details in sysfs)"
    lines = [head]
    lines += [f"      by-id: {name}" for name in port.by_id]
    lines += [f"      alias: {name}" for name in port.aliases]
    return lines


def _describe_chip(chip: GpioChip) -> list[str]:
    if chip.problem is not None:
        return [f"  {chip.path}: {chip.problem}"]
    lines = [f"  {chip.path}  {chip.label or chip.name}, {count(len(chip.lines), 'line')}"]
    for line in chip.lines:
        use = f"  used by {line.consumer or 'the kernel'}" if line.used else ""
        lines.append(f"    {line.offset:>3}  {line.name or '-'}{use}")
    return lines


def render_report(report: DeviceReport) -> str:
    """The text ``tidegate devices`` prints."""
    out = ["Serial ports (use a by-id name in `port:`; it survives replugging):"]
    if report.serial_ports:
        for port in report.serial_ports:
            out += _describe_port(port)
    else:
        out.append("  none found")
    out.append("GPIO chips (`chip:` and `line:` of a gpio driver):")
    if report.gpio_chips:
        for chip in report.gpio_chips:
            out += _describe_chip(chip)
    else:
        out.append("  none found")
    if report.notes:
        out.append("Notes:")
        out += [f"  - {note}" for note in report.notes]
    return "\n".join(out)
