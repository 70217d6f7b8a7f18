"""``onewire``: DS18B20-family temperature sensors on the Pi's 1-Wire bus.

The driver reads the kernel's w1 sysfs interface (the ``w1-gpio`` overlay; see
``hardware/onewire-i2c.md``): every ``interval`` it reads each sensor's
``/sys/bus/w1/devices/<id>/w1_slave`` in a worker thread (the kernel takes about
750 ms per sensor, so the event loop never waits on it) and emits one event per
good reading: named after the sensor, its value in ``unit`` (°C by default),
tagged ``sensor: <id>``. Families: 28 DS18B20, 10 DS18S20, 22 DS1822, 3b DS1825
(and the MAX31850 thermocouple interface, which shares that code), 42 DS28EA00.

With ``discover`` every sensor of those families on the bus is read, named by
its id, and a sensor plugged in later is picked up at the next reading; listed
``sensors:`` get a name, a unit and a calibration. By default the driver
discovers when no sensor is listed.

Never published, each counted (``tidegate status``) and kept as a dead letter with
the raw ``w1_slave`` text: a CRC line that says NO (``crc_error``), the 85.000 °C
power-on value (``power_on_85``: 85 °C with the power-on mark in scratchpad byte 6,
the kernel's own test; a DS18B20 that really reads 85 °C has no mark and is
published; a DS18S20 cannot be told apart, so set ``accept_85: true`` for one that
gets that hot), an all-zero scratchpad (``stuck_low``: the data line is shorted,
and the kernel's CRC says YES), a value outside the sensor's range
(``out_of_range``: -55..125 °C; -270..1800 °C for family 3b, where MAX31850
thermocouple interfaces live; a listed sensor's ``range:`` overrides it) and text
that is not what the kernel prints (``malformed``). An empty ``w1_slave``
(``read_failed``: how newer kernels report a sensor that did not answer or failed
its CRC five times) and an unreadable one (``read_error``) are counted as device
errors. A sensor whose folder disappears is ``vanished``: it goes stale in
``tidegate status`` (absence rules fire on it) while the others keep being read,
and it comes back (``returned``) when its folder does. A listed sensor that was
never on the bus is ``not_found``: stale, and its error names the ids that are
there. A sensor whose readings are rejected or fail three times in a row goes
stale too, until its next good reading.

```yaml
drivers:
  - name: tank
    type: onewire
    interval: 30s
    sensors:
      - {id: 28-0316a2795cff, name: water_top}
      - {id: 28-0316a27a11ff, name: water_bottom, offset: -0.25}   # calibrated in ice water
      - {id: 3b-0000001a2b3c, name: flue, unit: "°F"}               # a MAX31850
      - 28-0316a27b22ff                      # a bare id: named by its id
  - name: loft
    type: onewire           # every sensor on the bus, each named by its id
    path: sim               # a simulated bus on a laptop; remove on the Pi
    sim: {sensors: 3, faults: {crc_error: 0.02, power_on_85: 0.01, vanish_every: 10m}}
```

``path: sim`` builds a fake sysfs tree in a temporary folder and a simulator that
rewrites each sensor's ``w1_slave`` with drifting values and the faults of
``sim:``; the driver reads it with exactly the code that reads the real one. The
folder is named in the log at start (``simulated 1-Wire bus in /tmp/…``), so its
``w1_slave`` files can be looked at; it is removed when the driver stops.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tidegate.backoff import ReconnectSection
from tidegate.config.located_errors import ProblemList
from tidegate.config.types import Duration, Name, Section
from tidegate.driver import DriverConfig

SIM_PATH = "sim"
"""``path: sim``: read a simulated bus in a temporary folder."""

Family = Literal["10", "22", "28", "3b", "42"]
FAMILY_CODES: tuple[Family, ...] = ("10", "22", "28", "3b", "42")
Unit = Literal["°C", "°F", "K"]

_ID_HELP = "The sensor's folder name in /sys/bus/w1/devices: family, dash, 12 hex digits"


class SensorSpec(Section):
    """One listed sensor: which, what it is called, and its calibration. A bare id
    (``- 28-0316a2795cff``) is the same as ``- id: 28-0316a2795cff``."""

    id: str = Field(description=f"{_ID_HELP} (`28-0316a2795cff`; `tidegate devices` lists them).")
    name: Name | None = Field(None, description="Event name; default: the id.")
    unit: Unit = Field("°C", description="Unit of the value: `°C`, `°F` or `K`.")
    offset: float = Field(
        0.0, description="Added to the value (in `unit`) after `scale`: a calibration."
    )
    scale: float = Field(1.0, gt=0, description="The value (in `unit`) is multiplied by this.")
    accept_85: bool | None = Field(
        None,
        description="Publish 85.000 °C readings that carry the power-on mark (scratchpad "
        "byte 6 = 0x0C); default: the driver's. Only a DS18S20 or a clone needs it.",
    )
    range: tuple[float, float] | None = Field(
        None,
        description="`[low, high]` in °C: readings outside are rejected as `out_of_range`; "
        "default: -55..125, and -270..1800 for family 3b (DS1825 or a MAX31850 "
        "thermocouple interface, which shares its family code).",
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_id(cls, value: object) -> object:
        # `sensors: [28-0316a2795cff]` is what people write first.
        return {"id": value} if isinstance(value, str) else value

    @field_validator("range")
    @classmethod
    def _low_below_high(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"range {list(value)} must be [low, high] with low < high (°C)")
        return value

    def limits(self) -> tuple[int, int] | None:
        """``range`` in millidegrees, as the parser takes it; None: the family's."""
        if self.range is None:
            return None
        return round(self.range[0] * 1000), round(self.range[1] * 1000)

    @field_validator("id", mode="before")
    @classmethod
    def _id_shape(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            family, dash, serial = value.partition("-")
            if not (dash and len(family) == 2 and len(serial) == 12
                    and all(c in "0123456789abcdef" for c in family + serial)):
                raise ValueError(f"{value!r} is not a 1-Wire id: {_ID_HELP.lower()}")
            if family not in FAMILY_CODES:
                raise ValueError(
                    f"{value!r}: family {family} is not a temperature sensor "
                    f"(known: {', '.join(FAMILY_CODES)})"
                )
        return value


class OneWireSimFaults(Section):
    """Faults the simulated bus injects; each a chance per rewrite of a sensor's file."""

    crc_error: float = Field(0.0, ge=0, le=1, description="A damaged scratchpad (`crc=.. NO`).")
    power_on_85: float = Field(0.0, ge=0, le=1, description="The 85.000 °C power-on value.")
    stuck_low: float = Field(0.0, ge=0, le=1, description="An all-zero scratchpad.")
    read_failed: float = Field(
        0.0, ge=0, le=1, description="An empty file: how newer kernels show a failed read."
    )
    vanish_every: Duration | None = Field(
        None, gt=0, description="Unplug one sensor (its folder disappears) this often."
    )
    vanish_for: Duration = Field(5.0, gt=0, description="How long an unplugged sensor is away.")


class OneWireSim(Section):
    """The simulated bus of ``path: sim``."""

    sensors: int | list[str] = Field(
        2,
        description="How many sensors (ids made up, family 28), or their ids; listed "
        "`sensors:` of the driver are always on the simulated bus too.",
    )
    base: float = Field(21.0, ge=-55, le=125, description="Centre temperature, °C.")
    amplitude: float = Field(2.0, ge=0, description="Height of the slow swing, °C.")
    period: Duration = Field(600.0, gt=0, description="Length of one swing.")
    noise: float = Field(0.05, ge=0, description="Standard deviation of the noise, °C.")
    update: Duration = Field(
        1.0, gt=0, description="How often each sensor's w1_slave is rewritten."
    )
    faults: OneWireSimFaults = Field(
        default_factory=OneWireSimFaults, description="Faults to inject."
    )
    seed: int | None = Field(None, description="Random seed; unset: random.")

    @field_validator("sensors")
    @classmethod
    def _sensor_ids(cls, value: int | list[str]) -> int | list[str]:
        if isinstance(value, int):
            if not 0 <= value <= 100:
                raise ValueError("a simulated bus holds 0 to 100 sensors")
            return value
        return [str(SensorSpec(id=sensor_id).id) for sensor_id in value]


class OneWireConfig(DriverConfig, runtime="tidegate.drivers.onewire.driver:OneWireDriver"):
    """Temperature sensors on a 1-Wire bus, through the kernel's w1 sysfs files."""

    type: Literal["onewire"] = Field("onewire", description="Driver kind.")
    path: str = Field(
        "/sys/bus/w1/devices",
        min_length=1,
        description="The folder of 1-Wire slaves; `sim` reads a simulated bus (see `sim:`).",
    )
    interval: Duration = Field(
        10.0, gt=0, description="How often every sensor is read (each read takes ~750 ms)."
    )
    discover: bool | None = Field(
        None,
        description="Read every sensor of `families` found on the bus (named by id), "
        "including ones plugged in later; default: true when no `sensors` are listed.",
    )
    families: list[Family] = Field(
        default_factory=lambda: list(FAMILY_CODES),
        min_length=1,
        description="Family codes `discover` reads: 28 DS18B20, 10 DS18S20, 22 DS1822, "
        "3b DS1825 (or MAX31850), 42 DS28EA00; `[28, 10]` and `['28', '10']` both work.",
    )
    sensors: list[SensorSpec] = Field(
        default_factory=list, description="Sensors by id, with names and calibration."
    )
    unit: Unit = Field("°C", description="Unit of discovered sensors' values.")
    accept_85: bool = Field(
        False,
        description="Publish 85.000 °C readings that carry the power-on mark (scratchpad "
        "byte 6 = 0x0C). A DS18B20, DS1822, DS1825 or DS28EA00 that really reads 85 °C "
        "writes 0x10 there and is published anyway; a DS18S20 (and some clones) cannot "
        "be told apart, so set this where one really gets that hot.",
    )
    reconnect: ReconnectSection = Field(
        default_factory=ReconnectSection,
        description="Waits between looks for a bus folder that is missing (w1 not loaded).",
    )
    sim: OneWireSim = Field(
        default_factory=OneWireSim,
        description="The simulated bus of `path: sim`; ignored otherwise.",
    )

    @field_validator("families", mode="before")
    @classmethod
    def _families_as_text(cls, value: object) -> object:
        # YAML reads `[28, 10]` as numbers; the codes are the folder names' text.
        if isinstance(value, list):
            return [str(code) if isinstance(code, int) else code for code in value]
        return value

    @model_validator(mode="after")
    def _listed_once(self) -> OneWireConfig:
        problems = ProblemList()
        ids: set[str] = set()
        names: set[str] = set()
        for index, sensor in enumerate(self.sensors):
            if sensor.id in ids:
                problems.add(f"sensor id {sensor.id!r} is listed twice", "sensors", index, "id")
            elif (sensor.name or sensor.id) in names:
                problems.add(
                    f"sensor name {sensor.name or sensor.id!r} is listed twice",
                    "sensors", index, "name" if sensor.name else "id",
                )
            ids.add(sensor.id)
            names.add(sensor.name or sensor.id)
        problems.raise_if_any()
        return self

    def discovers(self) -> bool:
        """Whether unlisted sensors are read too."""
        return self.discover if self.discover is not None else not self.sensors
