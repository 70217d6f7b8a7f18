"""The Modbus application protocol of the simulated device: tables and PDUs.

Written from the Modbus Application Protocol Specification V1.1b3, not from
pymodbus, so that the driver's tests (which talk to this device through
pymodbus's client) check two independent implementations against each other.
A request PDU (function code + data) goes in, a response PDU comes out: a normal
reply or an exception reply (function code | 0x80, exception code). Framing (RTU
with its CRC, MBAP over TCP) is the transports' business (``sim_transport``).

Function codes served: 1 read coils, 2 read discrete inputs, 3 read holding
registers, 4 read input registers, 5 write single coil, 6 write single register,
15 write multiple coils, 16 write multiple registers. Any other is exception 1
(illegal function); an address outside the table is 2 (illegal data address); a
quantity outside the spec's limits or a malformed request is 3 (illegal data
value).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tidegate.drivers.framing.checksums import crc16_modbus

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
DEVICE_BUSY = 6

MAX_READ_BITS = 2000
MAX_READ_REGISTERS = 125
MAX_WRITE_BITS = 1968
MAX_WRITE_REGISTERS = 123


class Table(enum.StrEnum):
    """The four Modbus data tables, named as the driver's register maps name them."""

    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"


@dataclass(slots=True)
class SlaveTables:
    """One slave's data: an address is served only if it is a key of its table."""

    coils: dict[int, bool] = field(default_factory=dict)
    discrete: dict[int, bool] = field(default_factory=dict)
    holding: dict[int, int] = field(default_factory=dict)
    input: dict[int, int] = field(default_factory=dict)
    written: set[tuple[Table, int]] = field(default_factory=set)
    """Addresses a master wrote; value generators leave them alone (a setpoint stays)."""

    def bits(self, table: Table) -> dict[int, bool]:
        return self.coils if table is Table.COIL else self.discrete

    def words(self, table: Table) -> dict[int, int]:
        return self.holding if table is Table.HOLDING else self.input

    def map_bits(self, table: Table, start: int, values: list[bool]) -> None:
        """Serve ``values`` at ``start``.. in a bit table (a simulator's update)."""
        target = self.bits(table)
        for offset, value in enumerate(values):
            target[start + offset] = bool(value)

    def map_words(self, table: Table, start: int, values: list[int]) -> None:
        """Serve ``values`` at ``start``.. in a register table (a simulator's update)."""
        target = self.words(table)
        for offset, value in enumerate(values):
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"register {start + offset}: {value} is not a 16-bit word")
            target[start + offset] = value


def exception_pdu(function: int, code: int) -> bytes:
    return bytes((function | 0x80, code))


def _pack_bits(values: list[bool]) -> bytes:
    """Bits, the first in the low bit of the first byte (spec 6.1), zero-padded."""
    packed = bytearray((len(values) + 7) // 8)
    for index, value in enumerate(values):
        if value:
            packed[index // 8] |= 1 << (index % 8)
    return bytes(packed)


def _unpack_bits(data: bytes, count: int) -> list[bool]:
    return [bool(data[index // 8] >> (index % 8) & 1) for index in range(count)]


def _span(table: dict[int, bool] | dict[int, int], start: int, count: int) -> bool:
    return all(address in table for address in range(start, start + count))


_READ_TABLES = {1: Table.COIL, 2: Table.DISCRETE, 3: Table.HOLDING, 4: Table.INPUT}


def handle_pdu(tables: SlaveTables, pdu: bytes) -> bytes:
    """The response PDU to request ``pdu``; writes change ``tables``."""
    if not pdu:
        return exception_pdu(0, ILLEGAL_FUNCTION)
    function = pdu[0]
    data = pdu[1:]
    if function in _READ_TABLES:
        return _read(tables, function, data)
    if function in (5, 6):
        return _write_single(tables, function, data)
    if function in (15, 16):
        return _write_multiple(tables, function, data)
    return exception_pdu(function, ILLEGAL_FUNCTION)


def _read(tables: SlaveTables, function: int, data: bytes) -> bytes:
    if len(data) != 4:
        return exception_pdu(function, ILLEGAL_DATA_VALUE)
    start, count = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big")
    table = _READ_TABLES[function]
    if table in (Table.COIL, Table.DISCRETE):
        if not 1 <= count <= MAX_READ_BITS:
            return exception_pdu(function, ILLEGAL_DATA_VALUE)
        bits = tables.bits(table)
        if not _span(bits, start, count):
            return exception_pdu(function, ILLEGAL_DATA_ADDRESS)
        packed = _pack_bits([bits[address] for address in range(start, start + count)])
        return bytes((function, len(packed))) + packed
    if not 1 <= count <= MAX_READ_REGISTERS:
        return exception_pdu(function, ILLEGAL_DATA_VALUE)
    words = tables.words(table)
    if not _span(words, start, count):
        return exception_pdu(function, ILLEGAL_DATA_ADDRESS)
    body = b"".join(words[address].to_bytes(2, "big") for address in range(start, start + count))
    return bytes((function, len(body))) + body


def _write_single(tables: SlaveTables, function: int, data: bytes) -> bytes:
    if len(data) != 4:
        return exception_pdu(function, ILLEGAL_DATA_VALUE)
    address, value = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big")
    if function == 5:
        if value not in (0x0000, 0xFF00):
            return exception_pdu(function, ILLEGAL_DATA_VALUE)
        if address not in tables.coils:
            return exception_pdu(function, ILLEGAL_DATA_ADDRESS)
        tables.coils[address] = value == 0xFF00
        tables.written.add((Table.COIL, address))
    else:
        if address not in tables.holding:
            return exception_pdu(function, ILLEGAL_DATA_ADDRESS)
        tables.holding[address] = value
        tables.written.add((Table.HOLDING, address))
    return bytes((function,)) + data  # the reply echoes the request


def _write_multiple(tables: SlaveTables, function: int, data: bytes) -> bytes:
    if len(data) < 5:
        return exception_pdu(function, ILLEGAL_DATA_VALUE)
    start, count = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:4], "big")
    byte_count, payload = data[4], data[5:]
    coils = function == 15
    limit = MAX_WRITE_BITS if coils else MAX_WRITE_REGISTERS
    expected = (count + 7) // 8 if coils else 2 * count
    if not 1 <= count <= limit or byte_count != expected or len(payload) != byte_count:
        return exception_pdu(function, ILLEGAL_DATA_VALUE)
    if coils:
        if not _span(tables.coils, start, count):
            return exception_pdu(function, ILLEGAL_DATA_ADDRESS)
        for offset, value in enumerate(_unpack_bits(payload, count)):
            tables.coils[start + offset] = value
            tables.written.add((Table.COIL, start + offset))
    else:
        if not _span(tables.holding, start, count):
            return exception_pdu(function, ILLEGAL_DATA_ADDRESS)
        for offset in range(count):
            word = int.from_bytes(payload[2 * offset : 2 * offset + 2], "big")
            tables.holding[start + offset] = word
            tables.written.add((Table.HOLDING, start + offset))
    return bytes((function,)) + data[:4]


# --- RTU framing helpers -----------------------------------------------------------------


def crc16(data: bytes | bytearray) -> int:
    """CRC-16/MODBUS, sent low byte first: the framing package's (the sim's independence
    is from pymodbus, and the tests check this CRC against pymodbus's)."""
    return crc16_modbus(bytes(data))


def with_crc(frame: bytes) -> bytes:
    return frame + crc16(frame).to_bytes(2, "little")


def rtu_request_length(buffer: bytes | bytearray) -> int | None:
    """Length of the RTU request frame at the start of ``buffer`` (address to CRC),
    or None while too little has arrived to tell. Unknown function codes: -1 (their
    length cannot be known from the bytes; the transport waits for a silence)."""
    if len(buffer) < 2:
        return None
    function = buffer[1]
    if function in (1, 2, 3, 4, 5, 6):
        return 8
    if function in (15, 16):
        if len(buffer) < 7:
            return None
        return 9 + buffer[6]
    return -1
