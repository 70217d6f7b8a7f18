"""Sensirion SHT30/SHT31/SHT35 (temperature, humidity).

Datasheet: SHT3x-DIS, version 6 (Sensirion, 2019). A single-shot measurement
(§4.3, Table 9) with high repeatability and clock stretching disabled is the
command 0x2400; the chip NACKs reads until the result is there (at most 15.5 ms,
Table 4), then gives six bytes: temperature MSB, LSB, CRC, humidity MSB, LSB,
CRC. Each CRC is CRC-8 with polynomial 0x31, initial value 0xFF, no reflection,
no final XOR; the datasheet's example is 0xBEEF → 0x92 (§4.12, Table 19). The
conversions are T = -45 + 175·S/65535 °C and RH = 100·S/65535 % (§4.13).
"""

from __future__ import annotations

from tidegate.drivers.i2c.chips.base import BadReading, Bus, Chip, Measurement, Reading

SINGLE_SHOT_HIGH = (0x24, 0x00)
"""Single shot, high repeatability, no clock stretching (Table 9)."""
MEASUREMENT_TIME = 0.0155
"""Seconds, high repeatability, maximum (Table 4)."""


def crc8(data: bytes) -> int:
    """Sensirion's CRC-8: polynomial x⁸+x⁵+x⁴+1 (0x31), init 0xFF (§4.12)."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def temperature(raw: int) -> float:
    """°C from the raw 16-bit temperature (§4.13)."""
    return -45.0 + 175.0 * raw / 65535.0


def humidity(raw: int) -> float:
    """%RH from the raw 16-bit humidity (§4.13)."""
    return 100.0 * raw / 65535.0


def decode(data: bytes) -> tuple[float, float]:
    """(°C, %RH) from the six bytes of a measurement; a failed CRC is a ``BadReading``."""
    if len(data) != 6:
        raise BadReading(data, f"expected 6 bytes, got {len(data)}", "bad_reading")
    for at, what in ((0, "temperature"), (3, "humidity")):
        word, crc = data[at : at + 2], data[at + 2]
        if crc8(word) != crc:
            raise BadReading(
                data,
                f"{what} CRC mismatch: 0x{crc:02x} received, 0x{crc8(word):02x} computed",
                "crc_error",
            )
    return temperature(int.from_bytes(data[0:2], "big")), humidity(
        int.from_bytes(data[3:5], "big")
    )


class Sht3x(Chip):
    """An SHT3x, one single-shot measurement per reading."""

    def measure(self, bus: Bus) -> Measurement:
        command, argument = SINGLE_SHOT_HIGH
        bus.write_byte_data(self.address, command, argument)
        yield MEASUREMENT_TIME
        t, rh = decode(self.read(bus, 6))
        return [Reading("temperature", round(t, 2), "°C"), Reading("humidity", round(rh, 2), "%")]
