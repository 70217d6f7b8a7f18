"""ROHM BH1750FVI ambient light sensor.

Datasheet: BH1750FVI rev. D (ROHM, 2011). Each reading powers the chip on
(0x01) and starts a one-time high-resolution measurement (0x20, "Instruction set
architecture", p. 5); the chip converts for at most 180 ms (p. 2, "H-resolution
mode measurement time"), then powers down by itself. The result is two bytes,
high byte first; illuminance = count / 1.2 lx at the default measurement time
(p. 7: 0x83 0x90 → (2¹⁵+2⁹+2⁸+2⁷+2⁴) / 1.2 ≈ 28067 lx).
"""

from __future__ import annotations

from tidegate.drivers.i2c.chips.base import Bus, Chip, Measurement, Reading

POWER_ON = 0x01
ONE_TIME_HIGH_RES = 0x20
MEASUREMENT_TIME = 0.180
"""Seconds, H-resolution mode, maximum."""


def lux(data: bytes) -> float:
    """Illuminance in lx from the two result bytes (high byte first)."""
    return int.from_bytes(data[:2], "big") / 1.2


class Bh1750(Chip):
    """A BH1750 in one-time high-resolution mode."""

    def measure(self, bus: Bus) -> Measurement:
        bus.write_byte(self.address, POWER_ON)
        bus.write_byte(self.address, ONE_TIME_HIGH_RES)
        yield MEASUREMENT_TIME
        return [Reading("illuminance", round(lux(self.read(bus, 2)), 1), "lx")]
