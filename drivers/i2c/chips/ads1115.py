"""Texas Instruments ADS1115 16-bit ADC (also ADS1113/ADS1114 on AIN0-AIN1).

The ADS1113 has no PGA: its range is always ±2.048 V, so with an ADS1113 keep
``full_scale: 2.048`` (the default); any other value gives wrong volts.

Datasheet: ADS111x, SBAS444D (TI, revised 2018). Each channel is one single-shot
conversion (§9.4.2): write the Config register (0x01, Table 8) with OS = 1, the
input multiplexer (MUX), the full-scale range (PGA) and the data rate (DR), MODE
= 1 and the comparator off; wait one conversion period (1/DR, plus 10 % for the
internal oscillator's tolerance, §7.5); read Config again until OS = 1 (no
conversion running); read the Conversion register (0x00): a 16-bit two's
complement, MSB first, where 0x7FFF is +FSR·(2¹⁵-1)/2¹⁵ and 0x8000 is -FSR
(§9.3.3, Table 3: at ±2.048 V, 0x7FFF → 2.047938 V, 0x8000 → -2.048 V). OS is
checked once more after each extra wait before a conversion is given up
(``not_ready``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tidegate.drivers.i2c.chips.base import BadReading, Bus, Chip, Measurement, Reading

CONVERSION = 0x00
CONFIG = 0x01

MUX = {
    "AIN0-AIN1": 0b000, "AIN0-AIN3": 0b001, "AIN1-AIN3": 0b010, "AIN2-AIN3": 0b011,
    "AIN0": 0b100, "AIN1": 0b101, "AIN2": 0b110, "AIN3": 0b111,
}
"""Input → MUX[2:0] (Config bits 14:12); a single input is measured against GND."""
PGA = {6.144: 0b000, 4.096: 0b001, 2.048: 0b010, 1.024: 0b011, 0.512: 0b100, 0.256: 0b101}
"""Full-scale range in V → PGA[2:0] (bits 11:9)."""
DATA_RATE = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7}
"""Samples per second → DR[2:0] (bits 7:5)."""

START = 0x8000
"""OS = 1 on write: start a single conversion; on read: no conversion is running."""
SINGLE_SHOT = 0x0100
"""MODE = 1: power down after each conversion."""
COMPARATOR_OFF = 0x0003
"""COMP_QUE = 11: the comparator and the ALERT/RDY pin are off."""


@dataclass(frozen=True, slots=True)
class Channel:
    """One conversion: a named input at a full-scale range, then ``value * scale + offset``."""

    name: str
    input: str
    full_scale: float = 2.048
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = "V"


def config_word(channel: Channel, data_rate: int) -> int:
    """The Config register value that starts ``channel``'s conversion."""
    return (START | MUX[channel.input] << 12 | PGA[channel.full_scale] << 9 | SINGLE_SHOT
            | DATA_RATE[data_rate] << 5 | COMPARATOR_OFF)


def decimals(full_scale: float, scale: float = 1.0) -> int:
    """Decimal places that show one step of the converter (62.5 µV at ±2.048 V: 6)."""
    step = full_scale / 32768 * abs(scale or 1.0)
    return max(0, 1 - math.floor(math.log10(step)))


def volts(raw: bytes, full_scale: float) -> float:
    """The Conversion register's two bytes (MSB first, two's complement) in volts."""
    return int.from_bytes(raw[:2], "big", signed=True) * full_scale / 32768


class Ads1115(Chip):
    """Single-shot conversions on the configured channels, one after the other."""

    POLLS = 5
    """Extra waits (a quarter conversion each) before a conversion is given up."""

    def __init__(self, address: int, channels: list[Channel], data_rate: int = 128) -> None:
        super().__init__(address)
        self.channels = channels
        self.data_rate = data_rate
        self.conversion_time = 1.1 / data_rate + 0.0001

    def measure(self, bus: Bus) -> Measurement:
        readings = []
        for channel in self.channels:
            word = config_word(channel, self.data_rate)
            bus.write_i2c_block_data(self.address, CONFIG, [word >> 8, word & 0xFF])
            yield self.conversion_time
            for extra in range(self.POLLS + 1):  # a check after each wait, the last one too
                status = bus.read_i2c_block_data(self.address, CONFIG, 2)
                if status[0] & 0x80:
                    break
                if extra == self.POLLS:
                    raise BadReading(bytes(status),
                                     f"{channel.name}: the conversion did not finish", "not_ready")
                yield self.conversion_time / 4
            raw = bytes(bus.read_i2c_block_data(self.address, CONVERSION, 2))
            value = volts(raw, channel.full_scale) * channel.scale + channel.offset
            places = decimals(channel.full_scale, channel.scale)
            readings.append(Reading(channel.name, round(value, places), channel.unit))
        return readings
