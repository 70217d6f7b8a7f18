"""The ``i2c`` driver: sensor chips on an I²C bus (the Pi's GPIO2/GPIO3 header pins).

One driver instance reads one bus (``/dev/i2c-1`` on a Pi: ``bus: 1``); each
chip on it is a ``devices:`` entry with its 7-bit address, a name, and either a
built-in profile (``chip:``) or a list of registers read as they are. Built-in
profiles: ``bme280`` (also BMP280: °C, hPa, %RH, with the factory calibration),
``sht3x`` (°C, %RH, CRC-checked), ``ads1115`` (volts on single-ended or
differential inputs), ``bh1750`` (lx). Each reading is an event named
``<device>.<quantity>`` (``garden.temperature``) tagged ``device: <device>``.

Every NACK (a chip that does not answer) is counted (``nack``) and retried at
the device's interval while the other chips are read; three failed reads in a
row mark the chip stale in ``tidegate status`` (one glitch does not), and it
comes back by itself. A reading that fails its CRC, or a conversion that never
finishes, is rejected with its bytes (dead letter) and counted; a chip that
sends nothing else goes stale the same way, with the reason. The wrong chip at
an address (its id register says so) is stale at once. A missing
``/dev/i2c-N`` (I²C not enabled: ``sudo raspi-config nonint do_i2c 0``) is
retried with the ``reconnect:`` backoff, every chip stale meanwhile; a bus that
times out on every transfer is reported as stuck (SDA or SCL held low). The
service that ``tidegate service install`` writes may open ``/dev/i2c-*``
(``DeviceAllow=char-i2c rw``, group ``i2c``). ``bus: sim`` reads simulated
chips that answer like the parts, through the same driver code: the one line
to change on a laptop.

``bus: 1`` and ``bus: "1"`` are the same; ``chip:`` is matched in any case
(``BME280``). An address is hex (``0x76``): ``address: 76`` is decimal 76, i.e.
0x4c, and is refused with a hint for a profile that cannot be there.

```yaml
drivers:
  - name: env
    type: i2c
    bus: 1                    # /dev/i2c-1; `sim` on a laptop
    interval: 30s
    devices:
      - name: garden          # events garden.temperature, garden.pressure, garden.humidity
        chip: bme280
        address: 0x76
        oversampling: {temperature: 2, pressure: 4, humidity: 1}
      - name: shed
        chip: sht3x           # shed.temperature, shed.humidity
        address: 0x44
      - name: light
        chip: bh1750          # light.illuminance (lx)
        address: 0x23
        interval: 5s
      - name: adc
        chip: ads1115
        address: 0x48
        data_rate: 128
        channels:
          - {name: battery, input: AIN0, full_scale: 4.096, scale: 3.0}   # 1:3 divider
          - {name: shunt, input: AIN2-AIN3, full_scale: 0.256, scale: 10, unit: A}
      - name: lux2            # generic: a chip without a profile, by its registers
        address: 0x29
        setup: [{register: 0x80, value: 0x03}]
        registers:
          - {name: channel0, register: 0xAC, type: u16, byte_order: little}
```
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from tidegate.backoff import ReconnectSection
from tidegate.config.located_errors import ProblemList
from tidegate.config.types import Duration, Section
from tidegate.driver import DriverConfig
from tidegate.drivers.i2c.devices import Device

SIM_BUS = "sim"


class I2cSimSection(Section):
    """What the simulated bus does besides answering (``bus: sim`` only)."""

    seed: int | None = Field(None, description="Random seed; unset: random.")
    nack_rate: float = Field(
        0.0, ge=0, le=1, description="Chance that a chip does not answer a transaction."
    )
    crc_error_rate: float = Field(
        0.0, ge=0, le=1, description="Chance that an SHT3x reading arrives with a bad CRC."
    )


class I2cConfig(DriverConfig, runtime="tidegate.drivers.i2c.driver:I2cDriver"):
    """Chips on one I²C bus."""

    type: Literal["i2c"] = Field("i2c", description="Driver kind: `i2c`.")
    bus: Annotated[int, Field(ge=0)] | Literal["sim"] | str = Field(
        description="The bus: its number (`1` is /dev/i2c-1, the Pi's header pins; `\"1\"` "
        "too), a path (`/dev/i2c-1`), or `sim` for simulated chips. `tidegate devices` "
        "lists the buses."
    )
    interval: Duration = Field(10.0, gt=0, description="How often each device is read.")
    devices: list[Device] = Field(min_length=1, description="The chips on the bus.")
    reconnect: ReconnectSection = Field(
        default_factory=ReconnectSection,
        description="Waits between attempts to open a bus that is missing.",
    )
    sim: I2cSimSection = Field(
        default_factory=I2cSimSection,
        description="`bus: sim`: faults of the simulated chips; ignored on a real bus.",
    )

    @field_validator("bus", mode="before")
    @classmethod
    def _a_bus(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.isdigit():
            return int(text)  # `bus: "1"`: the number, quoted
        if text == SIM_BUS or text.startswith("/"):
            return text
        if text.startswith("i2c-") and text[4:].isdigit():
            raise ValueError(f"write `bus: {text[4:]}` or `bus: /dev/{text}`, not '{text}'")
        raise ValueError(
            f"must be a number (`1` is /dev/i2c-1), a /dev path or `sim`, not '{text[:20]}'"
        )

    @model_validator(mode="after")
    def _distinct(self) -> I2cConfig:
        problems = ProblemList()
        seen: dict[int, int] = {}
        names: set[str] = set()
        for index, device in enumerate(self.devices):
            if device.name in names:
                problems.add(f"two devices are named '{device.name}'", "devices", index, "name")
            names.add(device.name)
            first = seen.setdefault(device.address, index)
            if first != index:
                problems.add(
                    f"'{self.devices[first].name}' and '{device.name}' both use address "
                    f"0x{device.address:02x}",
                    "devices", index, "address",
                )
        problems.raise_if_any()
        return self

    def interval_of(self, device: Device) -> float:
        """How often ``device`` is read."""
        return device.interval if device.interval is not None else self.interval
