"""Exact numbers: what a field publishes is the number the device sent, or a reject.

- an explicit ``decimals:`` rounds the decimal the device wrote, half to even, not the
  binary float nearest to it (2.675 is stored as 2.67499999..., so it became 2.67);
- a ``number`` field keeps an integer an int: 9007199254740993 used to become
  9007199254740992.0, and a 30-digit JSON integer 1.2345678901234568e+29;
- an integer an event cannot carry (beyond 64 bits) is rejected, not rounded;
- ``f32`` struct fields publish the shortest decimal of the float32 (21.3, not
  21.299999237060547);
- the JSON duplicate-key check refuses a record it cannot decide on.
"""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import numpy
import orjson
import pytest
from pydantic import TypeAdapter

from tidegate.drivers.parsing import records as _records
from tidegate.drivers.parsing.conversions import INT_MAX, INT_MIN, shortest_f32
from tidegate.drivers.parsing.parse import FrameParser, FrameRejected, ParseConfig
from tidegate.event import new_event
from tidegate.payload import encode_event

PARSE: TypeAdapter[ParseConfig] = TypeAdapter(ParseConfig)


def parsed(config: dict[str, Any], frame: bytes) -> dict[str, Any]:
    parser = FrameParser(PARSE.validate_python(config), "probe")
    return {event.name: event.value for event in parser.parse(frame, 0.0)}


def rejection(config: dict[str, Any], frame: bytes) -> str:
    parser = FrameParser(PARSE.validate_python(config), "probe")
    with pytest.raises(FrameRejected) as caught:
        parser.parse(frame, 0.0)
    return str(caught.value)


def kv(**field: Any) -> dict[str, Any]:
    return {"format": "kv", "fields": {"v": field}}


# --- decimals: decimal rounding, half to even ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [
        # Ties, decided by the decimal text (half to even), not by the binary float:
        ("2.675", 2, 2.68),  # the float 2.67499999... rounded to 2.67
        ("2.665", 2, 2.66),  # the float 2.66500000...4 rounded to 2.67
        ("1.015", 2, 1.02),  # the float 1.01499999... rounded to 1.01
        ("0.125", 2, 0.12),
        ("21.45", 1, 21.4),  # a tie: to the even 4 (as before, now by rule)
        ("21.35", 1, 21.4),
        ("1.005", 2, 1.0),
        # Not ties: the nearest.
        ("21.46", 1, 21.5),
        ("-2.6751", 2, -2.68),
        ("1e-3", 2, 0.0),
    ],
)
def test_explicit_decimals_round_the_decimal_text_half_to_even(
    text: str, decimals: int, expected: float
) -> None:
    assert parsed(kv(decimals=decimals), b"v=" + text.encode()) == {"v": expected}
    assert parsed(kv(decimals=decimals, scale=1), b"v=" + text.encode()) == {"v": expected}


def test_decimals_with_scale_and_bias_compute_exactly_before_rounding() -> None:
    # 2665 * 0.001 is exactly 2.665, a tie: 2.66. In floats it is 2.66500000...4: 2.67.
    assert parsed(kv(scale=0.001, decimals=2), b"v=2665") == {"v": 2.66}
    assert parsed(kv(scale=0.1, bias=-40, decimals=1), b"v=615") == {"v": 21.5}
    # 0.1 * 26.75 = 2.675 (float: 2.6750000000000003); the decimal tie goes to the even 8.
    assert parsed(kv(scale=0.1, decimals=2), b"v=26.75") == {"v": 2.68}
    json = {"format": "json", "fields": {"v": {"decimals": 2}}}
    assert parsed(json, b'{"v": 2.675}') == {"v": 2.68}
    f32 = {"format": "struct", "fields": {"v": {"offset": 0, "type": "f32", "decimals": 2}}}
    assert parsed(f32, struct.pack(">f", 2.675)) == {"v": 2.68}


def test_decimals_keep_an_integer_and_reject_what_cannot_be_rounded_exactly() -> None:
    result = parsed(kv(decimals=1), b"v=1523")
    assert result == {"v": 1523} and isinstance(result["v"], int)
    scaled = parsed(kv(decimals=0, scale=0.5), b"v=5")
    assert scaled == {"v": 2.0} and isinstance(scaled["v"], float)  # 2.5: a tie, to 2
    assert rejection(kv(decimals=2, bias=0.5), b"v=1e-999999") == (
        "field 'v': '1e-999999' has too many digits to round exactly"
    )
    assert rejection(kv(decimals=2, scale=10), b"v=1.7976931348623157e308") == (
        "field 'v': '1.7976931348623157e308' gives a number beyond a float's range"
    )
    assert rejection(kv(decimals=2, scale=2), b"v=nan") == "field 'v': nan is not a finite number"
    assert rejection(kv(decimals=2), b"v=1e400") == (
        "field 'v': '1e400' gives a number beyond a float's range"
    )
    assert rejection(kv(decimals=2), b"v=Infinity") == "field 'v': inf is not a finite number"
    assert rejection(kv(decimals=2), b"v=sNaN") == "field 'v': 'sNaN' is not a number"


# --- number: an integer stays an int --------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b"v=9007199254740993", 9007199254740993),  # was 9007199254740992.0
        (b"v=-42", -42),
        (b"v=+7", 7),
        (b"v=0021", 21),
        (b"v=18446744073709551615", INT_MAX),
        (b"v=-9223372036854775808", INT_MIN),
    ],
)
def test_a_number_field_keeps_an_integer_exact(frame: bytes, expected: int) -> None:
    value = parsed(kv(), frame)["v"]
    assert value == expected and type(value) is int


def test_a_number_field_keeps_json_integers_and_other_numbers_as_sent() -> None:
    json = {"format": "json", "fields": {"v": {}}}
    big = parsed(json, b'{"v": 9007199254740993}')["v"]
    assert big == 9007199254740993 and type(big) is int
    assert type(parsed(json, b'{"v": 3}')["v"]) is int
    assert type(parsed(json, b'{"v": 3.0}')["v"]) is float
    assert type(parsed(kv(), b"v=21.0")["v"]) is float
    assert parsed(kv(), b"v=1e3") == {"v": 1000.0}
    # scale and bias give a float, rounded to its resolution, as before.
    assert parsed(kv(scale=0.1), b"v=3") == {"v": 0.3}


@pytest.mark.parametrize(
    ("config", "frame"),
    [
        ({"format": "json", "fields": {"v": {}}}, b'{"v": 123456789012345678901234567890}'),
        ({"format": "json", "fields": {"v": {"type": "int"}}}, b'{"v": 18446744073709551616}'),
        ({"format": "json", "fields": {"v": {}}}, b'{"v": -9223372036854775809}'),
        ({"format": "kv", "fields": {"v": {}}}, b"v=18446744073709551616"),
        ({"format": "kv", "fields": {"v": {"type": "int"}}}, b"v=" + b"9" * 5000),
        ({"format": "kv", "fields": {"v": {}}}, b"v=" + b"9" * 5000),
    ],
)
def test_an_integer_an_event_cannot_carry_is_rejected_not_rounded(
    config: dict[str, Any], frame: bytes
) -> None:
    reason = rejection(config, frame)
    assert "does not fit in 64 bits" in reason or "is not an integer" in reason


def test_an_integral_float_too_large_to_be_exact_is_not_an_int() -> None:
    # 9007199254740993.0 reads as 9007199254740992.0: as an int that is another number.
    int_field = {"format": "json", "fields": {"v": {"type": "int"}}}
    assert rejection(int_field, b'{"v": 9007199254740993.0}') == (
        "field 'v': 9007199254740992.0 is a float too large to be an exact integer"
    )
    assert parsed(int_field, b'{"v": 1e15}') == {"v": 10**15}


def test_every_published_integer_can_be_encoded() -> None:
    # The encoder (orjson) refuses integers beyond 64 bits: such an event would fail
    # in the outbox. The limits the parser enforces are exactly the encoder's.
    for value in (INT_MIN, INT_MAX):
        assert orjson.loads(encode_event(new_event("s", "v", value, time=0.0), 1, "g"))[
            "value"
        ] == value
    for value in (INT_MIN - 1, INT_MAX + 1):
        with pytest.raises(orjson.JSONEncodeError):
            encode_event(new_event("s", "v", value, time=0.0), 1, "g")


def test_unlisted_integers_stay_exact_or_stay_text() -> None:
    config = {"format": "kv", "fields": {"v": {}}, "unlisted": "include"}
    result = parsed(config, b"v=1,n=9007199254740993,big=123456789012345678901234567890")
    assert result == {"v": 1, "n": 9007199254740993, "big": "123456789012345678901234567890"}
    assert type(result["n"]) is int
    json = {"format": "json", "fields": {"v": {}}, "unlisted": "include"}
    result = parsed(json, b'{"v": 1, "big": 123456789012345678901234567890}')
    assert result == {"v": 1, "big": "123456789012345678901234567890"}


# --- f32: the shortest decimal ------------------------------------------------------------


def test_f32_fields_publish_the_shortest_decimal_and_f64_fields_the_double() -> None:
    config = {"format": "struct", "byte_order": "little", "fields": {
        "t": {"offset": 0, "type": "f32"},
        "s": {"offset": 4, "type": "f32", "scale": 0.5},
        "d": {"offset": 8, "type": "f64"},
    }}
    frame = struct.pack("<ffd", 21.3, 0.3, 21.299999237060547)
    assert parsed(config, frame) == {"t": 21.3, "s": 0.15, "d": 21.299999237060547}
    assert parsed(config, struct.pack("<ffd", 16777217.0, 1e-45, 0.1))["t"] == 16777216.0


def test_the_shortest_f32_decimal_is_numpys_for_any_float32() -> None:
    # numpy's float32 repr is the shortest round-trip decimal (Dragon4); the pure-Python
    # search must give the same value: checked on edge values and random bit patterns.
    # Powers of two (where the float32s below are twice as dense as above), their
    # neighbours, subnormals (fewer digits than six), both signs; then random ones.
    rng = random.Random(9)
    patterns = [
        sign | exponent << 23 | mantissa
        for sign in (0, 1 << 31)
        for exponent in range(255)
        for mantissa in (0, 1, 0x400000, 0x7FFFFF)
    ]
    patterns += [*range(1, 3000), 0x41AA6666, 0x3DCCCCCD]
    patterns += [rng.getrandbits(32) for _ in range(20_000)]
    for bits in patterns:
        value = struct.unpack("<f", struct.pack("<I", bits))[0]
        if not math.isfinite(value):
            continue
        short = shortest_f32(value)
        assert struct.unpack("<f", struct.pack("<f", short))[0] == value
        assert short == float(str(numpy.float32(value))), hex(bits)


# --- json: the duplicate-key check refuses what it cannot decide ----------------------------


def test_a_record_the_exact_duplicate_check_cannot_read_is_refused() -> None:
    # A frame the standard library refuses (here: an integer past its 4,300-digit limit)
    # after orjson read it: whether a key repeats is unknown. It used to pass unchecked.
    frame = b'{"t":1,"t":2,"x":' + b"1" * 4400 + b"}"
    with pytest.raises(FrameRejected, match="cannot check for repeated keys"):
        _records._refuse_duplicate_keys(frame, {"t": 2, "x": 1.0})


def test_huge_numbers_in_json_take_the_exact_path_and_still_catch_repeats() -> None:
    json = {"format": "json", "fields": {"v": {}}}
    assert "appears twice" in rejection(json, b'{"v": 1, "v": 123456789012345678901234567890}')
    assert parsed(json, b'{"v": 12345678901234567890, "id": "1234567890123456789"}') == {
        "v": 12345678901234567890
    }
    # A float literal stays a float; a nested integer beyond 64 bits is found too.
    assert parsed(json, b'{"v": 1e19}') == {"v": 1e19}
    nested = {"format": "json", "fields": {"x.big": {}}}
    assert rejection(nested, b'{"x": {"big": -123456789012345678901234567890}}') == (
        "field 'x.big': integer -123456789012345678901234567890 does not fit in 64 bits"
    )
