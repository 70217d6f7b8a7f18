"""One scan of the machine: what ``tidegate devices`` found, with notes on what is
missing and how to enable it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from serial.tools import list_ports

from tidegate.ops.devices.gpio import GpioChip, _import_gpiod, find_gpio_chips
from tidegate.ops.devices.i2c import I2cBus, Opener, find_i2c_buses
from tidegate.ops.devices.onewire import OneWireSensor, _read_once, find_onewire
from tidegate.ops.devices.paths import SYSTEM, DevicePaths
from tidegate.ops.devices.ports import Comports, SerialPort, find_serial_ports


@dataclass(slots=True)
class DeviceReport:
    serial_ports: list[SerialPort] = field(default_factory=list)
    gpio_chips: list[GpioChip] = field(default_factory=list)
    onewire: list[OneWireSensor] = field(default_factory=list)
    i2c_buses: list[I2cBus] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Plain-language remarks: what is missing and what to do about it."""


def scan_devices(
    paths: DevicePaths = SYSTEM,
    comports: Comports = list_ports.comports,
    import_gpiod: Callable[[], ModuleType | None] = _import_gpiod,
    *,
    i2c_opener: Opener | None = None,
    read_w1: Callable[[Path], tuple[float | None, str | None]] = _read_once,
) -> DeviceReport:
    """Everything ``tidegate devices`` lists; each source is a parameter for tests."""
    report = DeviceReport(serial_ports=find_serial_ports(paths, comports))
    if not any(port.usb_id for port in report.serial_ports) and not any(
        port.by_id for port in report.serial_ports
    ):
        report.notes.append(
            f"no USB serial adapter: none is plugged in, or its driver is missing "
            f"({paths.serial_by_id} lists every one udev sees)"
        )
    report.gpio_chips, notes = find_gpio_chips(paths, import_gpiod)
    report.notes += notes
    report.onewire, notes = find_onewire(paths, read_w1)
    report.notes += notes
    report.i2c_buses, notes = find_i2c_buses(paths, i2c_opener)
    report.notes += notes
    return report
