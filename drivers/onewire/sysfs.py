"""The kernel's 1-Wire sysfs interface: which folders are sensors, and what a
``w1_slave`` file says.

With the ``w1-gpio`` overlay and the ``w1_therm`` module, each sensor on the bus is
a folder ``/sys/bus/w1/devices/<family>-<id>`` (e.g. ``28-0316a2795cff``; the
folder also holds ``w1_bus_master1``, which is not a sensor). Reading its
``w1_slave`` file makes the kernel start a conversion, wait for it (~750 ms at
12 bits) and print the 9-byte scratchpad twice::

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

The first line ends in the kernel's CRC verdict, the second in the temperature in
millidegrees Celsius (Documentation/w1/slaves/w1_therm.rst; ``w1_slave_show`` in
drivers/w1/slaves/w1_therm.c). ``parse_w1_slave`` turns that text into a
``Reading`` or a ``Rejected`` with a counter name and a one-line reason; it never
guesses:

- an empty file (``read_failed``): newer kernels (w1_therm as rewritten in 2020)
  retry a read up to five times and, when the sensor does not answer or every
  CRC fails, print nothing;
- ``crc=.. NO``: the scratchpad was damaged on the wire (long cable, weak
  pull-up, interference); older kernels print the failed read like this;
- ``t=85000`` with scratchpad byte 6 at 0x0C (``power_on_85``): the DS18B20's
  power-on value, read before a conversion finished (a brown-out, or a
  parasite-powered sensor starving). After a real conversion byte 6 of a
  DS18B20, DS1822, DS1825 or DS28EA00 holds ``0x10 - (t & 0x0f)``: 0x10 at
  85.000 °C, so a genuine 85 °C (a boiler, a flue) is published. This is the
  kernel's own test (``W1_THERM_CHECK_RESULT`` in ``convert_t``, off unless
  ``features`` is written). On a DS18S20 (family 10) 85.000 °C always comes
  with byte 6 at 0x0C, and some DS18B20 clones keep 0x0C there: such a reading
  is rejected unless the driver or sensor says ``accept_85: true``;
- ``t=127937`` with byte 6 at 0x0C (``power_on_85`` too): the kernel's other
  "conversion never ran" signature (not enough power);
- an all-zero scratchpad: the data line is stuck low (shorted or a sensor
  half-connected) and the CRC of nine zero bytes is zero, so the kernel says YES;
- a temperature outside the sensor's range (``out_of_range``), such as the
  -127 °C some stacks report for a failed read: -55..125 °C, except family 3b,
  which is the DS1825 and also the MAX31850 thermocouple interface
  (-270..+1800 °C; the kernel reads it as a DS1825, same millidegrees); a
  listed sensor's ``range:`` overrides it;
- anything else the kernel would not print (a missing line, no ``t=``).

No I/O here but ``read_w1_slave`` and ``list_sensors``, both blocking: the
driver calls them in a worker thread.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

FAMILIES: dict[str, str] = {
    "10": "DS18S20",
    "22": "DS1822",
    "28": "DS18B20",
    "3b": "DS1825",
    "42": "DS28EA00",
}
"""Family code (the first byte of the ROM id, as the folder name spells it) of the
temperature sensors the kernel's ``w1_therm`` module reads."""

SENSOR_ID = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{12})$")
"""A slave folder's name: family, a dash, the 48-bit serial number (lower-case hex)."""

POWER_ON_MILLIDEGREES = 85_000
"""The DS18B20's scratchpad after power-on, before any conversion: 85.000 °C."""

NO_CONVERSION_MARK = 0x0C
"""Scratchpad byte 6 after power-on (its reset value). A DS18B20-family
conversion overwrites it with ``0x10 - (t & 0x0f)``, which is 0x10 at 85 °C."""

NO_CONVERSION = frozenset({bytes.fromhex("5005"), bytes.fromhex("ff07")})
"""Bytes 0-1 that, with byte 6 at ``NO_CONVERSION_MARK``, mean no conversion ran:
the kernel's ``W1_THERM_CHECK_RESULT`` test (85.000 °C power-on value; 127.937 °C,
not enough power). A DS18S20's 85.000 °C (``aa 00``) always has byte 6 at 0x0c."""

RANGE = (-55_000, 125_000)
"""The thermometers' measuring range in millidegrees; outside it is a failed read."""

FAMILY_RANGES: dict[str, tuple[int, int]] = {"3b": (-270_000, 1_800_000)}
"""Families whose range differs: 3b is the DS1825 and also the MAX31850
thermocouple interface (-270..+1800 °C), which the kernel reads the same way."""

OVERLAY_HINT = (
    "add `dtoverlay=w1-gpio,gpiopin=4` (Pi 5: `w1-gpio-pi5`) to /boot/firmware/config.txt "
    "and reboot (wiring: hardware/onewire-i2c.md)"
)
"""How to bring up the Pi's 1-Wire bus: said by the driver and by ``tidegate devices``."""

DEFAULT_BUS = "/sys/bus/w1/devices"
"""Where the kernel puts the 1-Wire slaves; missing means the overlay is not loaded."""

VANISHED_ERRNOS = frozenset({errno.ENOENT, errno.ENODEV, errno.ENXIO})
"""What reading a sensor that left the bus raises: its folder is gone (ENOENT), or
the kernel removed the device while it was open (ENODEV, ENXIO)."""

_CRC_LINE = re.compile(r"^((?:[0-9a-f]{2} ){9}): crc=([0-9a-f]{2}) (YES|NO)$")
_TEMP_LINE = re.compile(r"^((?:[0-9a-f]{2} ){9})t=(-?\d+)$")


@dataclass(frozen=True, slots=True)
class Reading:
    """A good reading: millidegrees Celsius, exactly as the kernel printed them."""

    millidegrees: int

    @property
    def celsius(self) -> float:
        return self.millidegrees / 1000


@dataclass(frozen=True, slots=True)
class Rejected:
    """A reading that must not be published: ``counter`` names the health counter,
    ``reason`` says why in one line."""

    counter: str
    reason: str


def family_of(sensor_id: str) -> str | None:
    """The family code of a slave folder name, or None if it is not one."""
    match = SENSOR_ID.match(sensor_id)
    return match.group(1) if match else None


def family_name(sensor_id: str) -> str:
    """``DS18B20`` for a ``28-…`` id; ``family 0x2d`` for a device of another kind."""
    family = family_of(sensor_id) or "??"
    return FAMILIES.get(family, f"family 0x{family}")


def family_range(family: str | None) -> tuple[int, int]:
    """The range in millidegrees outside which a reading of ``family`` is rejected."""
    return FAMILY_RANGES.get(family or "", RANGE)


def _range_text(limits: tuple[int, int]) -> str:
    return f"{limits[0] / 1000:g}..{limits[1] / 1000:g} °C"


def parse_w1_slave(
    text: str,
    *,
    accept_85: bool = False,
    family: str | None = None,
    limits: tuple[int, int] | None = None,
) -> Reading | Rejected:
    """What a ``w1_slave`` file's text says; see the module docstring for each
    rejection. ``limits`` (millidegrees) default to ``family``'s range."""
    lines = text.strip().splitlines()
    if not lines:
        return Rejected(
            "read_failed", "empty w1_slave: the kernel got no valid reading (no answer or bad CRC)"
        )
    if len(lines) != 2:
        return Rejected("malformed", f"expected 2 lines from w1_slave, got {len(lines)}")
    crc = _CRC_LINE.match(lines[0].strip())
    temp = _TEMP_LINE.match(lines[1].strip())
    if crc is None or temp is None:
        return Rejected("malformed", "w1_slave is not `… crc=xx YES|NO` then `… t=N`")
    if crc.group(3) != "YES":
        return Rejected("crc_error", f"CRC check failed (crc={crc.group(2)} NO)")
    if crc.group(1) != temp.group(1):
        return Rejected("malformed", "the two scratchpad copies in w1_slave differ")
    if not crc.group(1).strip().replace("00", "").replace(" ", ""):
        return Rejected("stuck_low", "all-zero scratchpad: the data line is stuck low")
    millidegrees = int(temp.group(2))
    pad = bytes.fromhex(crc.group(1))
    no_conversion = pad[6] == NO_CONVERSION_MARK and (
        millidegrees == POWER_ON_MILLIDEGREES or pad[:2] in NO_CONVERSION
    )
    if no_conversion and not accept_85:
        return Rejected(
            "power_on_85",
            f"t={millidegrees} with scratchpad byte 6 at 0x0c: no conversion ran "
            "(power-on value or not enough power; a DS18S20 or a clone that really reads "
            "85 °C needs accept_85: true)",
        )
    low, high = limits if limits is not None else family_range(family)
    if not low <= millidegrees <= high:
        return Rejected(
            "out_of_range",
            f"t={millidegrees} is outside the sensor's {_range_text((low, high))} range",
        )
    return Reading(millidegrees)


def read_w1_slave(folder: Path) -> str:
    """The text of a sensor's ``w1_slave`` (blocking: ~750 ms on real hardware).
    OSError when it cannot be read; its errno in ``VANISHED_ERRNOS`` means the
    sensor left the bus."""
    with open(folder / "w1_slave", "rb") as file:
        return file.read(4096).decode("ascii", "replace")


def list_sensors(base: Path) -> list[str]:
    """The slave folder names (any family) under ``base``, sorted; OSError when
    ``base`` cannot be listed (no 1-Wire master: the overlay is not loaded)."""
    with os.scandir(base) as entries:
        return sorted(entry.name for entry in entries if SENSOR_ID.match(entry.name))
