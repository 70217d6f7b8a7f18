"""Property: every published reading is a whole record the device sent intact.

For each framing x format, hypothesis generates a stream of well-formed records with
known values (each record carries its index, so no two are alike), damages some of
them as serial lines do (a lost line end, a record cut short and glued to the next,
a lost head, garbage before a record, a damaged byte), cuts the stream into random
chunks, and feeds the real framer and the real parser. Then:

- safety: the readings of every parsed frame equal the readings of one record that
  was sent intact, and these records come in the order they were sent: no value
  mixed from two records, none invented, none from a damaged record;
- liveness: every intact record that damage did not touch (its bytes and the
  boundary before it) is published; garbage costs only itself;
- every damaged stream produced at least one reject (counted, with a reason).

What cannot be seen is not drawn, and the cases say so. A run of lost bytes that
starts inside one record and ends inside the next can leave a well-formed record
made of both: no format can tell, and a checksum catches it only by chance (1 in
256 for NMEA's XOR, less for sums, which ignore where a byte is). A changed digit
is another number: without a checksum, damaged bytes are non-text bytes (what line
noise mostly gives, and what the simulated device injects). ``csv`` cannot see a
cut inside one column, so its cuts span a delimiter; ``fixed`` frames have no
checksum, so their damage is lost, inserted and damaged-end bytes only.

The runs are derandomized (the same examples every run: no flaky CI) and bounded
(a few seconds in all); with the settings raised to 3,000 random examples a case
they pass too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from tidegate.drivers._framing import (
    BinaryFraming,
    FramingConfig,
    encode_frame,
    make_framer,
    seal_binary_frame,
)
from tidegate.drivers._parsing import FrameParser, FrameRejected, ParseConfig

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
    avoid: bytes = b""
    """Bytes a fixed frame's data never holds (its end sequence)."""

    def framing_config(self) -> FramingConfig:
        return FRAMING.validate_python(self.framing)


def text_readings(v: Values) -> Readings:
    # b is written as hundredths ("-3.25"); c is raw tenths, scaled by 0.1: 3 -> 0.3 exactly.
    return [("n", v[0]), ("b", v[1] / 100), ("c", v[2] / 10)]


def struct_readings(v: Values) -> Readings:
    return [("n", v[0]), ("b", v[1]), ("c", v[2] / 10)]

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


def struct_parse(offset: int, byte_order: str = "big") -> dict[str, Any]:
    return {"format": "struct", "byte_order": byte_order, "fields": {
        "n": {"offset": offset, "type": "u16"},
        "b": {"offset": offset + 2, "type": "i16"},
        "c": {"offset": offset + 4, "type": "u16", "scale": 0.1},
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
        {"type": "fixed", "length": 8, "end": "0d 0a"},
        struct_parse(0),
        lambda v: struct.pack(">HhH", *v),
        struct_readings, ("cut", "head", "garbage", "end"), avoid=b"\r\n",
    ),
}


def values(case: Case) -> st.SearchStrategy[tuple[int, int]]:
    """The two measured values: an i16 and a u16 (b is hundredths in text formats)."""
    pair = st.tuples(st.integers(-32768, 32767), st.integers(0, 65535))
    if case.avoid:
        return pair.filter(lambda v: not set(struct.pack(">hH", *v)) & set(case.avoid))
    return pair


@dataclass
class Stream:
    wire: bytes
    damage: list[str]
    intact: list[bool]
    """Records sent intact (garbage before a record does not damage it)."""
    must: list[bool]
    """Records that must be published: intact, and nothing damaged the boundary before."""
    sent: list[bytes]
    """Each record's bytes before the damage."""
    traced: bool = False
    """Damage that adds or changes bytes (more than a line end): it must show as a reject."""


def _terminator(config: FramingConfig) -> bytes | None:
    if config.type == "line":
        return config.terminator
    if config.type == "delimiter":
        return config.delimiter
    return None


def _cut(draw: st.DrawFn, body: bytes, case: Case) -> int:
    """Where a record is cut (kept before, lost after; or lost before, kept after)."""
    places = st.integers(1, len(body) - 1)
    if case.must_span is not None:
        span = case.must_span
        # For a prefix the kept part and for a head the lost part hold a delimiter;
        # either way body[:at] holds one.
        places = places.filter(lambda at: span in body[:at])
    return draw(places)


def _garbage(draw: st.DrawFn, case: Case, terminator: bytes | None) -> tuple[bytes, bool]:
    """Bytes inserted before a record, and whether they end in a line end of their own."""
    noise = draw(st.binary(min_size=1, max_size=12))
    if case.avoid:
        return bytes(b for b in noise if b not in case.avoid) or b"\0", False
    if terminator is None or case.checksum:
        return noise, False
    noise = bytes(0x80 | b for b in noise)  # not text: UTF-8 cannot hold these alone
    if draw(st.booleans()):
        return noise + terminator, True
    return noise, False


@st.composite
def streams(draw: st.DrawFn, case: Case) -> tuple[list[Values], Stream]:
    measured = draw(st.lists(values(case), min_size=1, max_size=8))
    records: list[Values] = [(index, b, c) for index, (b, c) in enumerate(measured)]
    config = case.framing_config()
    terminator = _terminator(config)
    # A start sequence (or a binary/fixed framer) finds a record after damage without
    # a clean boundary; plain lines need the line end before the record.
    resync = terminator is None or case.framing.get("start") is not None
    stream = Stream(b"", [], [], [], [])
    clean = True  # the boundary before the next record is intact
    for record in records:
        payload = case.payload(record)
        wire = payload if isinstance(config, BinaryFraming) else encode_frame(config, payload)
        body = len(wire) - len(terminator or b"")
        stream.sent.append(wire)
        # A head lost right after a record that lost its end is one run of lost bytes
        # across the boundary: what is left can be a well-formed record made of two,
        # which no format can tell and a checksum catches only by chance (see above).
        allowed = [d for d in case.damages if d != "head" or clean]
        damage = draw(st.sampled_from(("intact", "intact", *allowed)))
        separate = False  # garbage with its own line end
        next_clean = True
        if damage == "glue":
            wire, next_clean = wire[:body], False
        elif damage == "cut":
            wire, next_clean = wire[: _cut(draw, wire[:body], case)], False
        elif damage == "head":
            wire = wire[_cut(draw, wire[:body], case) :]
        elif damage == "garbage":
            noise, separate = _garbage(draw, case, terminator)
            wire = noise + wire
            stream.traced |= bool(noise.strip(b"\r\n"))
        elif damage == "flip":
            at = draw(st.integers(0, (len(wire) if case.checksum else body) - 1))
            if case.checksum:
                new = (wire[at] + draw(st.integers(1, 255))) % 256  # any other byte
            else:
                new = draw(st.integers(0x80, 0xFF))
            wire = wire[:at] + bytes([new]) + wire[at + 1 :]
            next_clean = at < body
        elif damage == "end":
            at = draw(st.integers(len(wire) - 2, len(wire) - 1))
            new = draw(st.integers(0, 255).filter(lambda b: b not in case.avoid))
            wire = wire[:at] + bytes([new]) + wire[at + 1 :]
            next_clean = False
        stream.traced |= damage in ("flip", "end")
        intact = damage in ("intact", "garbage")
        boundary = resync or (clean and damage != "garbage") or separate
        stream.wire += wire
        stream.damage.append(damage)
        stream.intact.append(intact)
        stream.must.append(intact and boundary)
        clean = next_clean
    return records, stream


def framed_and_parsed(case: Case, wire: bytes, sizes: list[int]) -> tuple[
    list[tuple[Readings, bytes]], list[tuple[bytes, str]]
]:
    """What the driver would publish for ``wire`` read in chunks of ``sizes`` (cycled),
    the line falling quiet at the end; and what it would reject."""
    rejects: list[tuple[bytes, str]] = []
    framer = make_framer(case.framing_config(), lambda raw, reason: rejects.append((raw, reason)))
    parser = FrameParser(PARSE.validate_python(case.parse), "probe")
    frames: list[bytes] = []
    at = 0
    for turn in range(len(wire)):
        if at >= len(wire):
            break
        size = sizes[turn % len(sizes)]
        frames += framer.feed(wire[at : at + size])
        at += size
        assert framer.pending() <= framer.max_length + 1  # less than a frame (and its "\r")
    while framer.pending():
        frames += framer.expire("quiet")
    published: list[tuple[Readings, bytes]] = []
    for frame in frames:
        try:
            events = parser.parse(frame, 0.0)
        except FrameRejected as exc:
            rejects.append((frame, str(exc)))
            continue
        published.append(([(event.name, event.value) for event in events], frame))
    return published, rejects


@pytest.mark.parametrize("name", list(CASES))
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_every_published_reading_is_an_intact_record(name: str, data: st.DataObject) -> None:
    case = CASES[name]
    records, stream = data.draw(streams(case), label="stream")
    sizes = data.draw(st.lists(st.integers(1, 40), min_size=1, max_size=6), label="chunks")
    published, rejects = framed_and_parsed(case, stream.wire, sizes)
    expected = [case.readings(record) for record in records]
    story = f"damage {stream.damage}, wire {stream.wire!r}, rejects {rejects}"
    matched: list[int] = []
    index = 0
    for readings, frame in published:
        # A damaged record counts only if the bytes that reached the parser are its own
        # (a lost run can rebuild a frame byte for byte when neighbours are alike).
        while index < len(records) and not (
            expected[index] == readings and (stream.intact[index] or frame in stream.sent[index])
        ):
            index += 1
        assert index < len(records), f"published {readings}, sent no such intact record: {story}"
        matched.append(index)
        index += 1
    lost = [i for i, must in enumerate(stream.must) if must and i not in matched]
    assert not lost, f"intact records {lost} were not published: {story}"
    # Lost bytes leave no trace when what is left is a frame the device sent, byte for
    # byte (a lost run between alike neighbours); otherwise damage is counted.
    lost = [i for i, damage in enumerate(stream.damage) if damage != "intact" and i not in matched]
    rebuilt = any(not stream.intact[i] for i in matched)
    if stream.traced or (lost and not rebuilt):
        assert rejects, f"damage without a reject: {story}"
    assert all(raw and reason for raw, reason in rejects)


def test_the_cases_cover_every_framing_and_text_format() -> None:
    framings = {case.framing["type"] for case in CASES.values()}
    formats = {case.parse["format"] for case in CASES.values()}
    assert framings == {"line", "delimiter", "fixed", "binary"}
    assert formats == {"kv", "csv", "json", "regex", "struct", "raw"}
