"""What ``tidegate devices`` finds: serial ports, GPIO chips, 1-Wire sensors and I²C
buses with the addresses that answer, for ``port:``, ``chip:``/``line:``,
``sensors: - id:`` and ``bus:``/``address:`` in a config.

One module per kind of device (``ports``, ``gpio``, ``onewire``, ``i2c``);
``report`` runs them all, ``render`` prints the result. Every /dev and /sys path is
a parameter (``DevicePaths``), and the I²C bus opener too, so tests point the
scan at temporary folders, a pseudo-terminal and a simulated bus.
"""

from tidegate.ops.devices.gpio import GPIO_INSTALL_HINT, GpioChip, GpioLine, find_gpio_chips
from tidegate.ops.devices.i2c import KNOWN_CHIPS, I2cBus, find_i2c_buses, probe_bus
from tidegate.ops.devices.onewire import OneWireSensor, find_onewire
from tidegate.ops.devices.paths import DevicePaths
from tidegate.ops.devices.ports import SerialPort, find_serial_ports
from tidegate.ops.devices.render import render_report
from tidegate.ops.devices.report import DeviceReport, scan_devices

__all__ = [
    "GPIO_INSTALL_HINT",
    "KNOWN_CHIPS",
    "DevicePaths",
    "DeviceReport",
    "GpioChip",
    "GpioLine",
    "I2cBus",
    "OneWireSensor",
    "SerialPort",
    "find_gpio_chips",
    "find_i2c_buses",
    "find_onewire",
    "find_serial_ports",
    "probe_bus",
    "render_report",
    "scan_devices",
]
