"""The framing x format cases of ``test_parser_properties``: per case, the config, how
a record is sent, what the parser must publish for it, and the damage drawn for it
(what that framing and format can detect; see the property's docstring)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter

from tidegate.drivers.framing.lines import BinaryFraming, FramingConfig, seal_binary_frame
from tidegate.drivers.parsing.parse import ParseConfig

FRAMING: TypeAdapter[FramingConfig] = TypeAdapter(FramingConfig)
PARSE: TypeAdapter[ParseConfig] = TypeAdapter(ParseConfig)

Values = tuple[int, int, int]
"""A record: its index, and two values the device measured (raw integers)."""

Readings = list[tuple[str, Any]]


@dataclass(frozen=True)
class Case:
    framing: dict[str, Any]
    parse: dict[str, Any]
    payload: Callable[[Values], bytes]
    """The record's bytes before framing."""
    readings: Callable[[Values], Readings]
    """What the parser must publish for it."""
    damages: tuple[str, ...]
    checksum: bool = False
    """Any damaged byte is caught (else damaged bytes are non-text bytes)."""
    must_span: bytes | None = None
    """Cuts and lost heads must span this byte (csv: a delimiter)."""
    end: bytes | None = None
    """A fixed frame's end sequence: the data never holds it (the documented limit)."""

    def framing_config(self) -> FramingConfig:
        return FRAMING.validate_python(self.framing)


def text_readings(v: Values) -> Readings:
    # b is written as hundredths ("-3.25"); c is raw tenths, scaled by 0.1: 3 -> 0.3 exactly.
    return [("n", v[0]), ("b", v[1] / 100), ("c", v[2] / 10)]


def struct_readings(v: Values) -> Readings:
    return [("n", v[0]), ("b", v[1]), ("c", v[2] / 10)]


def one_value(v: Values) -> int:
    """A record of one value with four digits (1000..8999), unique by its index."""
    return (v[0] + 1) * 1000 + v[2] % 1000

TEXT_FIELDS = {
    "n": {"type": "int", "required": True},
    "b": {"required": True},
    "c": {"scale": 0.1, "required": True},
}
TEXT_DAMAGES = ("glue", "cut", "head", "garbage", "flip")
BINARY_DAMAGES = ("cut", "head", "garbage", "flip")

PMS_LIKE = {"type": "binary", "start": "42 4d",
            "length": {"offset": 2, "size": 2, "adjust": 4},
            "checksum": {"type": "sum16"}, "max_length": 64}
SDS011 = {"type": "binary", "start": "aa c0", "length": 10,
          "checksum": {"type": "sum8", "start": 2}, "end": "ab"}
MODBUS = {"type": "binary", "start": "01 03", "length": {"offset": 2, "size": 1, "adjust": 5},
          "checksum": {"type": "crc16-modbus"}, "max_length": 64}


def struct_parse(offset: int, byte_order: str = "big", order: str = "nbc") -> dict[str, Any]:
    """n (u16), b (i16), c (u16, scaled) from ``offset`` on, laid out in ``order``."""
    at = {key: offset + 2 * order.index(key) for key in "nbc"}
    return {"format": "struct", "byte_order": byte_order, "fields": {
        "n": {"offset": at["n"], "type": "u16"},
        "b": {"offset": at["b"], "type": "i16"},
        "c": {"offset": at["c"], "type": "u16", "scale": 0.1},
    }}


def sealed(framing: dict[str, Any], offset: int, length: int, order: str = ">") -> Callable[
    [Values], bytes
]:
    config = FRAMING.validate_python(framing)
    assert isinstance(config, BinaryFraming)

    def frame(v: Values) -> bytes:
        body = bytearray(length)
        body[offset : offset + 6] = struct.pack(order + "HhH", *v)
        return seal_binary_frame(config, body)

    return frame


CASES: dict[str, Case] = {
    "line-kv": Case(
        {"type": "line"},
        {"format": "kv", "fields": TEXT_FIELDS, "unlisted": "reject"},
        lambda v: f"n={v[0]},b={v[1] / 100!r},c={v[2]}".encode(),
        text_readings, TEXT_DAMAGES,
    ),
    "line-csv": Case(
        {"type": "line"},
        {"format": "csv", "columns": ["n", "b", "c"], "fields": TEXT_FIELDS},
        lambda v: f"{v[0]},{v[1] / 100!r},{v[2]}".encode(),
        text_readings, TEXT_DAMAGES, must_span=b",",
    ),
    "line-json": Case(
        {"type": "line", "terminator": "\r\n"},
        {"format": "json", "fields": TEXT_FIELDS},
        lambda v: orjson.dumps({"n": v[0], "b": v[1] / 100, "c": v[2]}),
        text_readings, TEXT_DAMAGES,
    ),
    "line-regex-one-value": Case(
        # One value per line (a rangefinder's "1523"): two such records glued by a lost
        # line end read as one longer number, which no format can tell from a real one.
        # What shows is the width: a device that always sends four digits, parsed with a
        # bounded pattern and `match: full`, gets 8 (glued), 5-7 (cut and glued) or 1-3
        # digits (lost head) rejected. With `\d+`, or a one-column csv, 15241525 passes;
        # with `\d{1,4}`, a lost head ("23") does.
        {"type": "line", "terminator": "\r\n"},
        {"format": "regex", "match": "full", "pattern": r"(?P<n>\d{4})",
         "fields": {"n": {"type": "int", "required": True}}},
        lambda v: str(one_value(v)).encode(),
        lambda v: [("n", one_value(v))], TEXT_DAMAGES,
    ),
    "delimiter-regex": Case(
        {"type": "delimiter", "delimiter": ";"},
        {"format": "regex", "match": "full", "fields": TEXT_FIELDS,
         "pattern": r"N(?P<n>\d+) B(?P<b>-?\d+\.\d+) C(?P<c>\d+)"},
        lambda v: f"N{v[0]} B{v[1] / 100!r} C{v[2]}".encode(),
        text_readings, TEXT_DAMAGES,
    ),
    "nmea-regex": Case(
        {"type": "line", "terminator": "\r\n", "nmea_checksum": True, "start": "$"},
        {"format": "regex", "match": "full", "fields": TEXT_FIELDS,
         "pattern": r"\$WIXDR,N,(?P<n>\d+),B,(?P<b>-?\d+\.\d+),C,(?P<c>\d+)"},
        lambda v: f"$WIXDR,N,{v[0]},B,{v[1] / 100!r},C,{v[2]}".encode(),
        text_readings, TEXT_DAMAGES, checksum=True,
    ),
    "nmea-raw": Case(
        # raw checks nothing itself: what it publishes is what the framer let through.
        {"type": "line", "terminator": "\r\n", "nmea_checksum": True, "start": "$"},
        {"format": "raw"},
        lambda v: f"$WIXDR,{v[0]},{v[1]},{v[2]}".encode(),
        lambda v: [("raw", f"$WIXDR,{v[0]},{v[1]},{v[2]}")],
        TEXT_DAMAGES, checksum=True,
    ),
    "binary-sum16": Case(
        PMS_LIKE, struct_parse(4), sealed(PMS_LIKE, 4, 12), struct_readings, BINARY_DAMAGES,
        checksum=True,
    ),
    "binary-end-sum8": Case(
        SDS011, struct_parse(2, "little"), sealed(SDS011, 2, 10, "<"), struct_readings,
        BINARY_DAMAGES, checksum=True,
    ),
    "binary-crc16": Case(
        MODBUS, struct_parse(3), sealed(MODBUS, 3, 11), struct_readings, BINARY_DAMAGES,
        checksum=True,
    ),
    "fixed-end": Case(
        # b first and c last: a frame may begin with 0a and end its data with 0d (the
        # index n is below 256: its bytes 00 0i never join a neighbour into 0d 0a).
        {"type": "fixed", "length": 8, "end": "0d 0a"},
        struct_parse(0, order="bnc"),
        lambda v: struct.pack(">hHH", v[1], v[0], v[2]),
        struct_readings, ("cut", "head", "garbage", "end"), end=b"\r\n",
    ),
}
