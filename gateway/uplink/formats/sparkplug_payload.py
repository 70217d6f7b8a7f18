"""Sparkplug B's ``Payload`` protobuf message, written and read by hand.

The gateway writes only what its format needs of ``sparkplug_b.proto`` (Eclipse
Tahu's, ``org.eclipse.tahu.protobuf``): a payload's timestamp, metrics and seq, and
of a metric its name, alias, timestamp, datatype, the historical and null flags, a
property set (``engUnit``) and a value. The schema is small and frozen, so a few
varint and length-delimited writers carry no generated code and no protobuf
runtime on the device. It reads only a command's metrics (NCMD, DCMD): each one's
name, alias, datatype and scalar value.

Protobuf lets a message's fields come in any order and a field be appended to an
encoded message: ``stamp`` appends the timestamp and seq to a payload of metrics
when it is sent, without re-encoding it.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

# DataType (sparkplug_b.proto); the gateway writes these four.
INT64 = 4
DOUBLE = 10
BOOLEAN = 11
STRING = 12

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_U64 = (1 << 64) - 1


def varint(n: int) -> bytes:
    """``n`` (0 ≤ n < 2**64) as a protobuf varint."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def _uint(field: int, n: int) -> bytes:
    return _key(field, _VARINT) + varint(n)


def _text(field: int, text: str) -> bytes:
    raw = text.encode()
    return _key(field, _BYTES) + varint(len(raw)) + raw


def _message(field: int, body: bytes) -> bytes:
    return _key(field, _BYTES) + varint(len(body)) + body


def value_field(datatype: int, value: object) -> bytes:
    """The metric's value field for ``datatype`` (Metric's oneof ``value``)."""
    if datatype == BOOLEAN:
        return _uint(14, 1 if value else 0)
    if datatype == INT64:
        # long_value is a uint64: an Int64 goes in as its two's complement.
        assert isinstance(value, int)
        return _uint(11, value & _U64)
    if datatype == DOUBLE:
        assert isinstance(value, int | float)
        return _key(13, _FIXED64) + struct.pack("<d", float(value))
    assert isinstance(value, str)
    return _text(15, value)


def metric(
    *,
    timestamp: int,
    datatype: int,
    value: object,
    name: str | None = None,
    alias: int | None = None,
    with_datatype: bool = True,
    historical: bool = False,
    unit: str | None = None,
) -> bytes:
    """One ``Metric``, as the repeated field 2 of a Payload (ready to concatenate).

    ``value`` None is a null (``is_null``, no value field); ``unit`` goes in as the
    ``engUnit`` property, which Ignition and others show as the engineering unit.
    """
    body = b""
    if name is not None:
        body += _text(1, name)
    if alias is not None:
        body += _uint(2, alias)
    body += _uint(3, timestamp)
    if with_datatype:
        body += _uint(4, datatype)
    if historical:
        body += _uint(5, 1)
    if value is None:
        body += _uint(7, 1)
    if unit is not None:
        # PropertySet {keys: ["engUnit"], values: [PropertyValue {type: String, string_value}]}
        prop = _uint(1, STRING) + _text(8, unit)
        body += _message(9, _text(1, "engUnit") + _message(2, prop))
    if value is not None:
        body += value_field(datatype, value)
    return _message(2, body)


def stamp(metrics: bytes, timestamp: int, seq: int | None) -> bytes:
    """A Payload of the encoded ``metrics`` with its timestamp and (unless None) seq."""
    out = metrics + _uint(1, timestamp)
    return out if seq is None else out + _uint(3, seq)


# -- reading an NCMD or a DCMD ----------------------------------------------------------

# The other datatypes a host may write in a command (sparkplug_b.proto's DataType).
INT8, INT16, INT32 = 1, 2, 3
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT = 9
DATETIME, TEXT = 13, 14
_SIGNED_BITS = {INT8: 8, INT16: 16, INT32: 32}
_VALUE_FIELDS = frozenset(range(10, 16))


class Heard(NamedTuple):
    """A metric of a received payload, as far as the gateway reads it."""

    name: str | None
    alias: int | None
    boolean: bool | None
    """Its value where it is a Boolean (what a rebirth request is)."""
    datatype: int | None = None
    value: bool | int | float | str | None = None
    """Its value as Python's: None for a null, a value of a type not read (bytes,
    datasets, templates), or none given."""


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The fields of an encoded message, in order; ValueError if it is not one."""
    out: list[tuple[int, int | bytes]] = []
    at, end = 0, len(data)
    while at < end:
        key, at = _read_varint(data, at)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, at = _read_varint(data, at)
            out.append((field, value))
        elif wire == _BYTES:
            size, at = _read_varint(data, at)
            if at + size > end:
                raise ValueError("a field runs past the end of the message")
            out.append((field, data[at : at + size]))
            at += size
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if at + size > end:
                raise ValueError("a field runs past the end of the message")
            out.append((field, data[at : at + size]))
            at += size
        else:
            raise ValueError(f"wire type {wire} is not read here")
    return out


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a varint is cut short or too long")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def read_metrics(payload: bytes) -> list[Heard]:
    """The metrics of an encoded Payload (an NCMD's or DCMD's); ValueError if it is not one."""
    out = []
    for field, raw in _fields(payload):
        if field != 2 or not isinstance(raw, bytes):
            continue
        name: str | None = None
        alias: int | None = None
        datatype: int | None = None
        null = False
        value: tuple[int, int | bytes] | None = None
        for sub, item in _fields(raw):
            if sub == 1 and isinstance(item, bytes):
                name = item.decode("utf-8", "replace")
            elif sub == 2 and isinstance(item, int):
                alias = item
            elif sub == 4 and isinstance(item, int):
                datatype = item
            elif sub == 7 and isinstance(item, int):
                null = item != 0
            elif sub in _VALUE_FIELDS:
                value = (sub, item)
        read = None if null or value is None else _value(datatype, *value)
        boolean = read if isinstance(read, bool) else None
        out.append(Heard(name, alias, boolean, datatype, read))
    return out


def _value(datatype: int | None, field: int, raw: int | bytes) -> bool | int | float | str | None:
    """A metric's value field (``int_value`` 10 … ``string_value`` 15) as Python's."""
    if isinstance(raw, int):
        if field == 14:
            return raw != 0
        if field == 10:  # uint32: a negative Int8/16/32 is its two's complement
            bits = _SIGNED_BITS.get(datatype or 0)
            if bits is None:
                return raw
            # Sign-extended to 32 bits (Tahu's Java), or in the type's own width
            # (Tahu's Python: -1 as an Int8 is 255): both read back.
            if raw >= 1 << 31:
                return raw - (1 << 32)
            return raw - (1 << bits) if raw >= 1 << (bits - 1) else raw
        if field == 11:  # uint64: Int64 likewise; UInt64 and DateTime as they are
            return raw - (1 << 64) if datatype == INT64 and raw >= 1 << 63 else raw
        return None
    if field == 12 and len(raw) == 4:
        return float(struct.unpack("<f", raw)[0])
    if field == 13 and len(raw) == 8:
        return float(struct.unpack("<d", raw)[0])
    if field == 15:
        return raw.decode("utf-8", "replace")
    return None
