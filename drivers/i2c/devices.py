"""The ``devices:`` of an ``i2c`` driver: one model per chip profile, picked by ``chip``.

Light on purpose (pydantic and our config types only): ``tidegate check`` reads it.
The profiles' code is in ``tidegate.drivers.i2c.chips``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, Tag, field_validator, model_validator

from tidegate.config.located_errors import LocatedError
from tidegate.config.types import Duration, Name, Section
from tidegate.drivers.framing.checksums import ByteOrder
from tidegate.drivers.kinds import pick_by


def _address(value: Any) -> Any:
    """``0x76`` (YAML reads it as 118), ``"0x76"`` or ``118``."""
    if isinstance(value, str):
        try:
            return int(value.strip(), 0)
        except ValueError:
            raise ValueError(f"'{value[:20]}' is not an address; write e.g. 0x76") from None
    return value


def _seven_bits(value: int) -> int:
    if not 0x03 <= value <= 0x77:
        raise ValueError(f"0x{value:02x} is not a 7-bit device address (0x03 to 0x77)")
    return value


Address = Annotated[
    int,
    BeforeValidator(_address),
    AfterValidator(_seven_bits),
    Field(json_schema_extra={"anyOf": [{"type": "integer"}, {"type": "string"}]}),
]
"""A 7-bit I²C address, 0x03-0x77 (the others are reserved), hex accepted: ``0x76``."""

Oversampling = Literal[0, 1, 2, 4, 8, 16]


class _Device(Section):
    name: Name = Field(description="Device name: the events are `<name>.<quantity>`, "
                       "tagged `device: <name>`.")
    address: Address = Field(description="7-bit I²C address, e.g. `0x76`.")
    interval: Duration | None = Field(
        None, gt=0, description="How often to read it; default: the driver's `interval`."
    )

    ADDRESSES: ClassVar[tuple[int, ...]] = ()
    """The addresses the chip can have (its address pins); empty: any."""
    LABEL: ClassVar[str] = ""

    @model_validator(mode="after")
    def _known_address(self) -> _Device:
        if self.ADDRESSES and self.address not in self.ADDRESSES:
            choices = " or ".join(f"0x{a:02x}" for a in self.ADDRESSES)
            raise LocatedError(
                f"a {self.LABEL} answers at {choices}, not at 0x{self.address:02x}"
                + _as_hex(self.address, self.ADDRESSES),
                "address",
            )
        return self


def _as_hex(address: int, choices: tuple[int, ...]) -> str:
    """`` (76 decimal; did you mean 0x76?)`` when the decimal digits, read as hex, are
    an address the chip has: ``address: 76`` with the ``0x`` forgotten."""
    meant = int(str(address), 16)
    return f" ({address} decimal; did you mean 0x{meant:02x}?)" if meant in choices else ""


class Bme280Oversampling(Section):
    """Samples averaged per quantity (x1 … x16); more is less noise and a longer read."""

    temperature: Literal[1, 2, 4, 8, 16] = Field(
        1, description="Temperature oversampling (the others need it, so never 0)."
    )
    pressure: Oversampling = Field(1, description="Pressure oversampling; 0 skips pressure.")
    humidity: Oversampling = Field(
        1, description="Humidity oversampling; 0 skips humidity (a BMP280 has none)."
    )


class Bme280Device(_Device):
    """Bosch BME280 (°C, hPa, %RH) or BMP280 (°C, hPa): told apart by the chip id."""

    ADDRESSES: ClassVar[tuple[int, ...]] = (0x76, 0x77)
    LABEL: ClassVar[str] = "BME280/BMP280"
    chip: Literal["bme280"] = Field(description="`bme280`: also reads a BMP280.")
    address: Address = Field(0x76, description="0x76 (SDO to GND) or 0x77 (SDO to VDDIO).")
    oversampling: Bme280Oversampling = Field(
        default_factory=Bme280Oversampling, description="Samples per quantity."
    )


class Sht3xDevice(_Device):
    """Sensirion SHT30/31/35 (°C, %RH), CRC-checked."""

    ADDRESSES: ClassVar[tuple[int, ...]] = (0x44, 0x45)
    LABEL: ClassVar[str] = "SHT3x"
    chip: Literal["sht3x"] = Field(description="`sht3x`.")
    address: Address = Field(0x44, description="0x44 (ADDR to GND) or 0x45 (ADDR to VDD).")


class Bh1750Device(_Device):
    """ROHM BH1750 ambient light (lx)."""

    ADDRESSES: ClassVar[tuple[int, ...]] = (0x23, 0x5C)
    LABEL: ClassVar[str] = "BH1750"
    chip: Literal["bh1750"] = Field(description="`bh1750`.")
    address: Address = Field(0x23, description="0x23 (ADDR low) or 0x5C (ADDR high).")


AdsInput = Literal[
    "AIN0", "AIN1", "AIN2", "AIN3", "AIN0-AIN1", "AIN0-AIN3", "AIN1-AIN3", "AIN2-AIN3"
]


FULL_SCALES = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)


class AdsChannel(Section):
    """One ADS1115 input, converted on each read."""

    name: Name = Field(description="Quantity name: the event is `<device>.<name>`.")
    input: AdsInput = Field(
        description="`AIN0`…`AIN3` against GND, or a differential pair `AIN0-AIN1`, "
        "`AIN0-AIN3`, `AIN1-AIN3`, `AIN2-AIN3`."
    )
    full_scale: float = Field(
        2.048, description="Full-scale range (PGA) in V: 6.144, 4.096, 2.048, 1.024, 0.512 "
        "or 0.256 (±). The input must still stay within GND-0.3 V and VDD+0.3 V.",
        json_schema_extra={"enum": list(FULL_SCALES)},
    )
    scale: float = Field(1.0, description="value = volts * scale + offset (e.g. a divider).")
    offset: float = Field(0.0, description="Added after scaling.")
    unit: str | None = Field("V", max_length=32, description="Unit of the value.")


    @field_validator("full_scale")
    @classmethod
    def _a_range(cls, value: float) -> float:
        if value not in FULL_SCALES:
            raise ValueError(
                "must be one of " + ", ".join(map(str, FULL_SCALES)) + " (volts)"
            )
        return value


class Ads1115Device(_Device):
    """TI ADS1115 16-bit ADC: single-shot conversions on the listed channels."""

    ADDRESSES: ClassVar[tuple[int, ...]] = (0x48, 0x49, 0x4A, 0x4B)
    LABEL: ClassVar[str] = "ADS1115"
    chip: Literal["ads1115"] = Field(description="`ads1115`.")
    address: Address = Field(
        0x48, description="0x48 (ADDR to GND), 0x49 (VDD), 0x4A (SDA) or 0x4B (SCL)."
    )
    data_rate: Literal[8, 16, 32, 64, 128, 250, 475, 860] = Field(
        128, description="Samples per second; slower is less noise (one conversion is 1/rate)."
    )
    channels: list[AdsChannel] = Field(min_length=1, description="The inputs read, in order.")

    @model_validator(mode="after")
    def _unique_channels(self) -> Ads1115Device:
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            twice = next(i for i, name in enumerate(names) if name in names[:i])
            raise LocatedError(
                f"two channels are named {names[twice]!r}", "channels", twice, "name"
            )
        return self


RegisterType = Literal["u8", "i8", "u16", "i16", "u24", "i24", "u32", "i32", "f32"]
REGISTER_SIZES = {"u8": 1, "i8": 1, "u16": 2, "i16": 2, "u24": 3, "i24": 3, "u32": 4, "i32": 4,
                  "f32": 4}


class RegisterValue(Section):
    """One value read from a register (and the ones after it)."""

    name: Name = Field(description="Quantity name: the event is `<device>.<name>`.")
    reg: int = Field(
        alias="register", ge=0, le=0xFF, description="First register (the pointer written)."
    )
    type: RegisterType = Field(
        "u16", description="u8, i8, u16, i16, u24, i24, u32, i32 or f32; the bytes read "
        "are its size."
    )
    byte_order: ByteOrder = Field("big", description="Byte order: `big` (MSB first) or `little`.")
    shift: int = Field(0, ge=0, le=31, description="Right shift before scaling (e.g. 4 for a "
                       "12-bit value left-aligned in 16 bits); integer types only.")
    scale: float = Field(1.0, description="value = raw * scale + offset.")
    offset: float = Field(0.0, description="Added after scaling.")
    decimals: int | None = Field(None, ge=0, le=15, description="Round to this many places "
                                 "(exactly, half to even); default: what scale and offset give.")
    unit: str | None = Field(None, max_length=32, description="Unit of the value.")

    @model_validator(mode="after")
    def _shift_on_integers(self) -> RegisterValue:
        if self.shift and self.type == "f32":
            raise LocatedError("`shift` applies to integer types only", "shift")
        return self


class RegisterWrite(Section):
    """A byte written to a register."""

    reg: int = Field(alias="register", ge=0, le=0xFF, description="Register.")
    value: int = Field(ge=0, le=0xFF, description="Byte written.")


class GenericDevice(_Device):
    """Any chip with a register pointer: values read from registers, no profile."""

    chip: Literal["generic"] = Field(
        "generic", description="`generic` (the default when `chip` is left out)."
    )
    setup: list[RegisterWrite] = Field(
        default_factory=list,
        description="Written once each time the chip is (re)found, e.g. to wake it up.",
    )
    trigger: RegisterWrite | None = Field(
        None, description="Written before each read, e.g. to start a one-shot conversion."
    )
    wait: Duration = Field(0.0, ge=0, le=10, description="Time between `trigger` and the reads.")
    registers: list[RegisterValue] = Field(min_length=1, description="The values read.")

    @model_validator(mode="after")
    def _unique_values(self) -> GenericDevice:
        names = [r.name for r in self.registers]
        if len(set(names)) != len(names):
            twice = next(i for i, name in enumerate(names) if name in names[:i])
            raise LocatedError(
                f"two registers are named {names[twice]!r}", "registers", twice, "name"
            )
        return self


CHIPS = ["bme280", "sht3x", "ads1115", "bh1750", "generic"]


def _chip_in_lower_case(data: Any) -> Any:
    """``chip: BME280`` is ``bme280``: a part number is written either way."""
    if isinstance(data, dict) and isinstance(data.get("chip"), str):
        chip = data["chip"].strip().lower()
        if chip in CHIPS:
            return {**data, "chip": chip}
    return data


Device = Annotated[
    Annotated[Bme280Device, Tag("chip: bme280")]
    | Annotated[Sht3xDevice, Tag("chip: sht3x")]
    | Annotated[Ads1115Device, Tag("chip: ads1115")]
    | Annotated[Bh1750Device, Tag("chip: bh1750")]
    | Annotated[GenericDevice, Tag("chip: generic")],
    pick_by("chip", CHIPS, default="generic"),
    BeforeValidator(_chip_in_lower_case),
]
"""One chip on the bus: a built-in profile by ``chip``, or registers read as they are."""
