"""1-Wire sensors for a ``onewire`` driver's ``sensors:``: the kernel's w1 folders.

Each slave the bus master found is a folder ``<family>-<id>`` in
``/sys/bus/w1/devices``. A thermometer (DS18B20 family) is read once, through the
driver's own parser, so the listing shows a temperature (hold a sensor in your
hand to tell which id it is) or why there is none. The hint for a missing bus is
the driver's own (``OVERLAY_HINT``), so the two never disagree. A read takes about 750 ms per
sensor: the kernel starts a conversion and waits for it.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tidegate.drivers.onewire.sysfs import (
    FAMILIES,
    OVERLAY_HINT,
    Rejected,
    family_name,
    family_of,
    list_sensors,
    parse_w1_slave,
    read_w1_slave,
)
from tidegate.ops.devices.paths import SYSTEM, DevicePaths


@dataclass(frozen=True, slots=True)
class OneWireSensor:
    id: str
    """The folder name, as a onewire driver's `sensors: - id:` takes it."""
    family: str
    """The chip: DS18B20, DS18S20, ...; `family 0x2d` for other devices."""
    celsius: float | None = None
    """A reading taken for the listing, when one could be."""
    problem: str | None = None
    """Why there is no reading: not a thermometer, a rejected reading, unreadable."""


def _read_once(folder: Path) -> tuple[float | None, str | None]:
    try:
        text = read_w1_slave(folder)
    except PermissionError:
        return None, "not readable: permission denied"
    except OSError as exc:
        return None, f"not readable: {exc.strerror or exc}"
    parsed = parse_w1_slave(text, family=family_of(folder.name))
    if isinstance(parsed, Rejected):
        return None, f"reading rejected: {parsed.reason}"
    return parsed.celsius, None


def find_onewire(
    paths: DevicePaths = SYSTEM,
    read: Callable[[Path], tuple[float | None, str | None]] = _read_once,
) -> tuple[list[OneWireSensor], list[str]]:
    """The slaves on the 1-Wire bus, thermometers read once; and notes."""
    try:
        ids = list_sensors(paths.w1_devices)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return [], [f"no 1-Wire bus ({paths.w1_devices} is missing): {OVERLAY_HINT}"]
        return [], [f"cannot list {paths.w1_devices}: {exc.strerror or exc}"]
    if not ids:
        return [], [
            f"the 1-Wire bus is on but no sensor answers ({paths.w1_devices} has no "
            "sensor): check the wiring and the 4.7 kΩ pull-up from data to 3.3 V"
        ]
    sensors = []
    for sensor_id in ids:
        if family_of(sensor_id) in FAMILIES:
            celsius, problem = read(paths.w1_devices / sensor_id)
        else:
            celsius, problem = None, "not a temperature sensor"
        sensors.append(OneWireSensor(sensor_id, family_name(sensor_id), celsius, problem))
    return sensors, []
