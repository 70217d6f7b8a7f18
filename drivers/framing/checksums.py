"""Checksums that serial sensors put in their frames.

Each algorithm is known by the name the config uses (``checksum: {type: crc16-modbus}``)
and knows its width and the byte order its protocol usually transmits it in, so a
config only names a byte order when a device departs from the custom.

The CRCs are table-driven: a frame costs one table lookup per byte instead of eight
shift-and-xor steps, which matters on a Pi reading a few thousand frames a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

ChecksumKind: TypeAlias = Literal[
    "sum8", "sum16", "xor8", "lrc8", "crc8", "crc16-modbus", "crc16-ccitt"
]
ByteOrder: TypeAlias = Literal["big", "little"]


def sum8(data: bytes) -> int:
    """Sum of the bytes, modulo 256."""
    return sum(data) & 0xFF


def sum16(data: bytes) -> int:
    """Sum of the bytes, modulo 65536 (Plantower PMS sensors, many Chinese modules)."""
    return sum(data) & 0xFFFF


def xor8(data: bytes) -> int:
    """XOR of the bytes (NMEA 0183 uses it between ``$`` and ``*``)."""
    result = 0
    for byte in data:
        result ^= byte
    return result


def lrc8(data: bytes) -> int:
    """Two's complement of the 8-bit sum (Modbus ASCII's LRC)."""
    return (-sum(data)) & 0xFF


def _crc8_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


def _crc16_reflected_table(poly_reflected: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly_reflected if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def _crc16_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


_CRC8 = _crc8_table(0x07)
_CRC16_MODBUS = _crc16_reflected_table(0xA001)  # 0x8005 bit-reversed
_CRC16_CCITT = _crc16_table(0x1021)


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, initial value 0 (CRC-8/SMBUS; ``123456789`` gives 0xF4)."""
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS: reflected 0x8005, initial 0xFFFF; sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC16_MODBUS[(crc ^ byte) & 0xFF]
    return crc


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, not reflected."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16_CCITT[((crc >> 8) ^ byte) & 0xFF]
    return crc


@dataclass(frozen=True, slots=True)
class Checksum:
    """One algorithm: how to compute it, how wide it is, how it is usually sent."""

    compute: Callable[[bytes], int]
    size: int
    """Width on the wire, in bytes."""
    byte_order: ByteOrder
    """Customary order for multi-byte checksums; irrelevant for one byte."""

    def encode(self, value: int, byte_order: ByteOrder | None = None) -> bytes:
        return value.to_bytes(self.size, byte_order or self.byte_order)


CHECKSUMS: dict[ChecksumKind, Checksum] = {
    "sum8": Checksum(sum8, 1, "big"),
    "sum16": Checksum(sum16, 2, "big"),
    "xor8": Checksum(xor8, 1, "big"),
    "lrc8": Checksum(lrc8, 1, "big"),
    "crc8": Checksum(crc8, 1, "big"),
    "crc16-modbus": Checksum(crc16_modbus, 2, "little"),
    "crc16-ccitt": Checksum(crc16_ccitt, 2, "big"),
}
