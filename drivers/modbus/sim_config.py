"""The ``sim:`` block of a ``modbus`` driver: what a simulated bus serves, and its faults.

With ``port: sim`` (RTU) or ``host: sim`` (TCP) the driver polls a simulated
device built from its own ``devices:`` register maps
(``tidegate.drivers.modbus.sim_device``): every configured register holds a value
that changes over time, encoded exactly as the map says (a word-swapped f32 is
served word-swapped), and the device answers the real driver code over a real
pseudo-terminal (RTU, CRC-16) or a real TCP socket on 127.0.0.1 (MBAP). This
block says how the values move and which faults the device injects; without it,
every register gets a default that fits its name or unit (voltage about 230 V,
energy totals that only grow, coils that toggle, ...). With a real port the
block is ignored, so it can stay in the file.

```yaml
sim:
  seed: 7                                  # repeatable noise and faults
  values:                                  # by register name, or device.register
    voltage: {base: 230, amplitude: 4, period: 10m, noise: 0.3}
    current: {base: 4, amplitude: 3, period: 2m}
    import_energy: {kind: counter, start: 1520.5, increase: 1.2, every: 1h}
    meter2.import_energy: {kind: counter, start: 88, increase: 0.4, every: 1h}
    serial_number: 2001234                 # a plain value: fixed
    relay: {kind: toggle, every: 30s}
  faults:                                  # per request, on every device
    timeout: 0.01                          # no reply at all
    bad_crc: 0.005                         # a reply with a damaged CRC (RTU)
    exception: 0.005                       # an exception reply with `exception_code`
    exception_code: 6                      # device busy
  device_faults:                           # per device name: replaces `faults` for it
    meter2: {silent_every: 5m, silent_for: 30s}
```
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Tag, model_validator

from tidegate.config.types import Duration, Section
from tidegate.drivers.kinds import pick_by


class WaveValue(Section):
    """A measurement that drifts: base + sine + Gaussian noise."""

    kind: Literal["wave"] = Field("wave", description="The default kind.")
    base: float = Field(0.0, description="Centre value, in the register's engineering units.")
    amplitude: float = Field(0.0, ge=0, description="Height of the sine swing.")
    period: Duration = Field(60.0, gt=0, description="Length of one sine cycle.")
    noise: float = Field(0.0, ge=0, description="Standard deviation of the Gaussian noise.")


class CounterValue(Section):
    """A total that only grows (energy, volume, operating hours)."""

    kind: Literal["counter"] = Field(description="Grows by `increase` every `every`.")
    start: float = Field(0.0, ge=0, description="Value when the simulation starts.")
    increase: float = Field(1.0, ge=0, description="How much it grows in `every`.")
    every: Duration = Field(3600.0, gt=0, description="The time `increase` takes (smoothly).")


class FixedValue(Section):
    """A value that never changes (a serial number, a model code, a setting)."""

    kind: Literal["fixed"] = Field(description="Always `value`; a plain value is short for it.")
    value: bool | int | float | str = Field(description="The value served.")


class ToggleValue(Section):
    """A bit (coil, discrete input, bitfield bit) that flips on a schedule."""

    kind: Literal["toggle"] = Field(description="Flips between false and true every `every`.")
    every: Duration = Field(30.0, gt=0, description="Time between flips.")
    start: bool = Field(False, description="Value when the simulation starts.")


SimValue = WaveValue | CounterValue | FixedValue | ToggleValue


def _plain_is_fixed(data: Any) -> Any:
    """``serial_number: 2001234`` means ``{kind: fixed, value: 2001234}``."""
    if isinstance(data, bool | int | float | str):
        return {"kind": "fixed", "value": data}
    return data


SimValueConfig = Annotated[
    Annotated[WaveValue, Tag("kind: wave")]
    | Annotated[CounterValue, Tag("kind: counter")]
    | Annotated[FixedValue, Tag("kind: fixed")]
    | Annotated[ToggleValue, Tag("kind: toggle")],
    pick_by("kind", ["wave", "counter", "fixed", "toggle"], default="wave"),
    BeforeValidator(_plain_is_fixed),
]
"""How one register's value moves; its ``kind`` (default ``wave``) picks the model."""


class SimFaults(Section):
    """Faults a simulated device injects, each drawn per request addressed to it."""

    timeout: float = Field(0.0, ge=0, le=1, description="Chance a request gets no reply.")
    bad_crc: float = Field(
        0.0, ge=0, le=1,
        description="Chance the reply is damaged: a wrong CRC on RTU (the client discards "
        "it and times out); on TCP, what a TCP-to-RTU gateway then answers: exception 0x0B.",
    )
    exception: float = Field(
        0.0, ge=0, le=1, description="Chance of an exception reply with `exception_code`."
    )
    exception_code: int = Field(
        6, ge=1, le=255,
        description="Code of the injected exception replies (6: device busy, 4: device "
        "failure, 0x0B: gateway target failed to respond, ...).",
    )
    silent_every: Duration | None = Field(
        None,
        gt=0,
        description="Answer for this long, then not at all for `silent_for` (the device "
        "goes stale), and again.",
    )
    silent_for: Duration = Field(10.0, gt=0, description="How long each silence lasts.")

    @model_validator(mode="after")
    def _one_outcome(self) -> SimFaults:
        if self.timeout + self.bad_crc + self.exception > 1:
            raise ValueError("timeout + bad_crc + exception is a chance per request: at most 1")
        return self


class ModbusSimSection(Section):
    """A simulated bus for ``port: sim`` / ``host: sim``: values and faults."""

    values: dict[str, SimValueConfig] = Field(
        default_factory=dict,
        description="How each register's value moves, by register name (every device "
        "with that register) or `device.register` (one device); a plain value is fixed. "
        "Others get a default that fits their name, unit and type.",
    )
    faults: SimFaults = Field(
        default_factory=SimFaults, description="Faults every simulated device injects."
    )
    device_faults: dict[str, SimFaults] = Field(
        default_factory=dict,
        description="Faults per device name, replacing `faults` for that device.",
    )
    reply_delay: Duration = Field(
        0.0, ge=0, le=10, description="Time a device takes before it replies (processing time)."
    )
    echo: bool = Field(
        False,
        description="RTU: the line echoes each request back before the answer, as an RS-485 "
        "circuit that keeps its receiver on while sending does (the driver's `local_echo`).",
    )
    seed: int | None = Field(None, description="Random seed, for a repeatable run.")
