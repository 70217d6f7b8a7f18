"""What came back on the line: whole frames among stray bytes, and whether an answer
fits the request it was taken for.

An RTU frame carries no transaction id: pymodbus takes the first sound frame from
the right slave id as the answer to the request on the line. A late answer to an
earlier request of the same slave is taken just as well, so every answer is checked
against its request (``mismatch``) before anything decodes it: the function code,
and for a read the number of registers (2 bytes each) or of bytes of bits
(``ceil(count / 8)``). A read of another block with the same function and count
cannot be told apart this way; ``bus.Bus`` keeps those off the line by letting it
settle after every unanswered attempt.
"""

from __future__ import annotations

from pymodbus.pdu import ModbusPDU

from tidegate.drivers.framing.checksums import crc16_modbus


def rtu_frames(data: bytes) -> list[int] | None:
    """The slave ids of the whole RTU answer frames ``data`` consists of, each with a
    good CRC; None if it is anything else."""
    ids: list[int] = []
    at = 0
    while at < len(data):
        if len(data) - at < 5:
            return None
        function = data[at + 1]
        if function & 0x80:
            size = 5
        elif function in (1, 2, 3, 4):
            size = 5 + data[at + 2]
        elif function in (5, 6, 15, 16):
            size = 8
        else:
            return None
        frame = data[at : at + size]
        if len(frame) < size or crc16_modbus(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
            return None
        ids.append(data[at])
        at += size
    return ids


def tcp_frames(data: bytes) -> list[int] | None:
    """The unit ids of the whole MBAP frames ``data`` consists of; None otherwise."""
    ids: list[int] = []
    at = 0
    while at < len(data):
        if len(data) - at < 8 or data[at + 2 : at + 4] != b"\x00\x00":
            return None
        length = int.from_bytes(data[at + 4 : at + 6], "big")
        if length < 2 or len(data) - at < 6 + length:
            return None
        ids.append(data[at + 6])
        at += 6 + length
    return ids


def mismatch(function: int, reply: ModbusPDU, count: int | None, *, bits: bool) -> str | None:
    """What makes ``reply`` no answer to a request of ``function`` (a read of ``count``
    registers, or bits with ``bits``), in words; None if it fits."""
    got = reply.function_code & 0x7F
    if got != function:
        return f"an answer to function {got}"
    if count is None or reply.isError():
        return None
    if bits:
        want = (count + 7) // 8
        size = len(reply.bits) // 8  # pymodbus unpacks every byte sent, padding included
        if size != want:
            return f"{size} bytes of bits instead of {want}"
    elif len(reply.registers) != count:
        return f"{len(reply.registers)} registers instead of {count}"
    return None


def pdu_bytes(reply: ModbusPDU) -> bytes:
    """``reply`` as it came on the line (function code, then data): for a dead letter."""
    return bytes([reply.function_code]) + reply.encode()
