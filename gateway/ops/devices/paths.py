"""Where ``tidegate devices`` looks: every path a parameter, so that tests point the
scan at temporary folders standing in for /dev and /sys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DevicePaths:
    """Where to look; the defaults are the real system's."""

    dev: Path = Path("/dev")
    """Holds the Raspberry Pi UART aliases (serial0, serial1), the gpiochip nodes and
    the I²C bus nodes (i2c-1, ...)."""
    serial_by_id: Path = Path("/dev/serial/by-id")
    """udev's stable names for USB serial adapters (see hardware/udev)."""
    w1_devices: Path = Path("/sys/bus/w1/devices")
    """The kernel's 1-Wire slaves, one folder each (the w1-gpio overlay)."""


CONFIG_TXT = "/boot/firmware/config.txt"
"""Where Raspberry Pi OS (bookworm and later) reads overlays; /boot/config.txt before."""

SYSTEM = DevicePaths()
"""This machine's real paths: the default of every finder."""
