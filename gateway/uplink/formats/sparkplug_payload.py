"""Sparkplug B's ``Payload`` protobuf message, written and read by hand.

The gateway writes only what its format needs of ``sparkplug_b.proto`` (Eclipse
Tahu's, ``org.eclipse.tahu.protobuf``): a payload's timestamp, metrics and seq, and
of a metric its name, alias, timestamp, datatype, the historical and null flags, a
property set (``engUnit``) and a value. The schema is small and frozen, so a few
varint and length-delimited writers carry no generated code and no protobuf
runtime on the device. It reads only an NCMD's metrics (names, aliases, booleans).

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


# -- reading an NCMD --------------------------------------------------------------------


class Heard(NamedTuple):
    """A metric of a received payload, as far as the gateway reads it."""

    name: str | None
    alias: int | None
    boolean: bool | None


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
    """The metrics of an encoded Payload (an NCMD's); ValueError if it is not one."""
    out = []
    for field, raw in _fields(payload):
        if field != 2 or not isinstance(raw, bytes):
            continue
        name: str | None = None
        alias: int | None = None
        boolean: bool | None = None
        for sub, value in _fields(raw):
            if sub == 1 and isinstance(value, bytes):
                name = value.decode("utf-8", "replace")
            elif sub == 2 and isinstance(value, int):
                alias = value
            elif sub == 14 and isinstance(value, int):
                boolean = value != 0
        out.append(Heard(name, alias, boolean))
    return out
