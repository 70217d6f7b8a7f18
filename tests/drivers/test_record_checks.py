"""Ambiguous records are rejected with a reason, never guessed at; scaled values are exact.

Each case is a record a real device stream produces when a line end is lost or a
record is cut short and glued to the next one. Before these checks the parser kept
the last of a repeated key, or the first of two matches, and published a reading
mixed from two records.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from tidegate.drivers.parsing import parse as _parsing
from tidegate.drivers.parsing.parse import FrameParser, FrameRejected, ParseConfig

PARSE: TypeAdapter[ParseConfig] = TypeAdapter(ParseConfig)
RECEIVED = 1_700_000_000.0


def parsed(config: dict[str, Any], frame: bytes) -> dict[str, Any]:
    parser = FrameParser(PARSE.validate_python(config), "probe")
    return {event.name: event.value for event in parser.parse(frame, RECEIVED)}


def rejection(config: dict[str, Any], frame: bytes) -> str:
    parser = FrameParser(PARSE.validate_python(config), "probe")
    with pytest.raises(FrameRejected) as caught:
        parser.parse(frame, RECEIVED)
    return str(caught.value)


# --- kv -------------------------------------------------------------------------------

KV = {"format": "kv", "fields": {"a": {"type": "int"}, "b": {"type": "int"}, "c": {"type": "int"}}}


def test_kv_two_records_glued_by_a_lost_line_end_are_rejected() -> None:
    # The line end after "c=1" was lost: the last of each repeated key used to win,
    # publishing a=3, b=4, c=0 mixed with nothing to show for it.
    reason = rejection(KV, b"a=1,b=2,c=1a=3,b=4,c=0")
    assert reason == "key 'c': value '1a=3' holds '=': two records run together (a lost line end?)"


def test_kv_repeated_key_is_rejected() -> None:
    reason = rejection(KV, b"a=1,b=2,a=3")
    assert reason == "key 'a' appears twice: two records run together (a lost line end?)"
    # Also when the repeated key is not one the config lists.
    assert "appears twice" in rejection(KV, b"a=1,x=2,x=3")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"a=1,b=,c=3", "key 'b' has no value"),
        (b"a=1,b=2,c=", "key 'c' has no value"),
        (b"a=1,=2,c=3", "'=2' has no key"),
        (b"a=1,b2,c=3", "'b2' is not a key=value pair"),
    ],
)
def test_kv_pair_without_a_key_or_a_value_is_rejected(frame: bytes, reason: str) -> None:
    assert rejection(KV, frame) == reason


def test_kv_empty_pairs_between_separators_are_still_fine() -> None:
    assert parsed(KV, b"a=1,,b=2,c=3,") == {"a": 1, "b": 2, "c": 3}
    spaced = {"format": "kv", "pair_separator": " ", "kv_separator": ":", "unlisted": "include"}
    assert parsed(spaced, b"T:21.5  H:40") == {"T": 21.5, "H": 40.0}


def test_kv_unlisted_reject_catches_a_key_glued_to_the_remains_of_a_record() -> None:
    # "a=1,b" (a record cut short) glued to "a=4,b=5,c=6": every key is unique, but
    # "ba" is no key of this device.
    config = {**KV, "unlisted": "reject"}
    assert rejection(config, b"a=1,ba=4,b=5,c=6") == "unexpected key 'ba' (`unlisted: reject`)"
    assert parsed(config, b"a=1,b=2,c=3") == {"a": 1, "b": 2, "c": 3}
    assert parsed({**KV, "unlisted": "ignore"}, b"a=1,ba=4,b=5,c=6") == {"a": 1, "b": 5, "c": 6}


# --- csv ------------------------------------------------------------------------------

CSV = {"format": "csv", "columns": ["a", "b", "c"], "fields": {"a": {}, "b": {}, "c": {}}}


def test_csv_glued_records_have_the_wrong_column_count() -> None:
    assert rejection(CSV, b"1,2,34,5,6") == "expected 3 columns, got 5"
    assert rejection(CSV, b"1,2") == "expected 3 columns, got 2"  # not padded
    assert rejection(CSV, b"1,2,3,") == "expected 3 columns, got 4"  # not truncated


# --- json -----------------------------------------------------------------------------

JSON = {"format": "json", "fields": {"a": {"type": "int"}, "b": {"type": "int"}}}


@pytest.mark.parametrize(
    "frame",
    [
        b'{"a": 1, "b": 2, "a": 3}',
        b'{"a":1,"b":2,"b":3}',
        b'{"env": {"t": 1, "t": 2}, "a": 1}',  # in a nested object too
        b'{"a": 1, "b": 2, "a\\u0020": 0, "\\u0061": 3}',  # an escaped key: the exact check
        b'{"a": 1, "at": "12:30", "a": 2}',  # a colon in a string does not hide it
    ],
)
def test_json_duplicate_keys_are_rejected(frame: bytes) -> None:
    assert "appears twice in an object" in rejection(JSON, frame)


def test_json_without_duplicates_passes_even_with_colons_and_escapes_in_strings() -> None:
    frame = b'{"a": 1, "b": 2, "at": "12:30:00", "note": "say \\"hi\\": ok"}'
    assert parsed(JSON, frame) == {"a": 1, "b": 2}


def test_json_nested_deeper_than_the_exact_check_can_follow_is_refused() -> None:
    deep = b"[" * 1000 + b"]" * 1000
    assert rejection(JSON, b'{"a": 1, "a": 2, "d": ' + deep + b"}") == (
        "nested too deeply to check for repeated keys"
    )
    assert parsed(JSON, b'{"a": 1, "b": 2, "d": ' + deep + b"}") == {"a": 1, "b": 2}


def test_json_record_cut_short_and_glued_to_the_next_is_rejected() -> None:
    # '{"a":1,"b":' lost its tail and line end; the next record followed.
    glued = b'{"a":1,"b":{"a":3,"b":4}}'
    assert rejection(JSON, glued) == "field 'b' holds a dict, not a value"
    assert rejection(JSON, b'{"a":1}{"a":2}').startswith("not JSON")


def test_json_unlisted_reject_and_ambiguous_dotted_key() -> None:
    config = {"format": "json", "fields": {"env.t": {}}, "unlisted": "reject"}
    assert parsed(config, b'{"env": {"t": 21.5}}') == {"env.t": 21.5}
    assert rejection(config, b'{"env": {"t": 21.5}, "x": 1}') == (
        "unexpected key 'x' (`unlisted: reject`)"
    )
    both = b'{"env.t": 1, "env": {"t": 2}}'
    assert rejection(config, both) == "key 'env.t' is both a key and a path to a value"


# --- regex ----------------------------------------------------------------------------

TEMPERATURE = {"format": "regex", "pattern": r"T=(?P<t>-?[\d.]+)", "fields": {"t": {}}}


def test_regex_search_matching_twice_is_rejected() -> None:
    # "T=21" (cut short) glued to "T=22.5": the first match used to be published.
    reason = rejection(TEMPERATURE, b"T=21T=22.5")
    assert reason == "the pattern matches twice (at 0 and 4): two records run together?"
    assert parsed(TEMPERATURE, b"sensor 1: T=21.5 ok") == {"t": 21.5}


def test_regex_anchored_pattern_searches_once() -> None:
    anchored = {**TEMPERATURE, "pattern": r"^T=(?P<t>-?[\d.]+)"}
    assert parsed(anchored, b"T=21.5,T=3") == {"t": 21.5}  # "^" matches at the start only


def test_regex_full_match_rejects_a_record_followed_by_noise() -> None:
    full = {**TEMPERATURE, "match": "full"}
    assert rejection(full, b"T=21\x80x") == "invalid utf-8 at byte 4"
    assert rejection(full, b"T=21xx") == "does not match the pattern"
    assert parsed(full, b"T=21.5") == {"t": 21.5}


def test_regex_empty_group_is_rejected_and_a_group_that_took_no_part_is_missing() -> None:
    config = {"format": "regex", "pattern": r"T=(?P<t>[\d.]*)(?:,H=(?P<h>\d+))?",
              "match": "full", "fields": {"t": {"type": "string"}, "h": {"type": "int"}}}
    assert rejection(config, b"T=,H=40") == "field 't' is empty"
    assert parsed(config, b"T=21.5") == {"t": "21.5"}
    required = {**config, "fields": {"t": {}, "h": {"required": True}}}
    assert rejection(required, b"T=21.5") == "required field 'h' is missing"


def test_unlisted_reject_is_only_for_kv_and_json() -> None:
    with pytest.raises(ValidationError, match="`unlisted: reject` is for kv and json"):
        PARSE.validate_python({**CSV, "unlisted": "reject"})
    with pytest.raises(ValidationError, match="`unlisted: reject` is for kv and json"):
        PARSE.validate_python({**TEMPERATURE, "unlisted": "reject"})


# --- resolution -------------------------------------------------------------------------


def test_scale_rounds_to_the_resolution_it_gives() -> None:
    tenths = {"format": "kv", "fields": {"v": {"scale": 0.1}}}
    assert parsed(tenths, b"v=3") == {"v": 0.3}  # not 0.30000000000000004
    assert parsed(tenths, b"v=21.55") == {"v": 2.155}  # the raw value's decimals are kept
    quarters = {"format": "kv", "fields": {"v": {"scale": 0.25, "bias": -0.1}}}
    assert parsed(quarters, b"v=7") == {"v": 1.65}
    kelvin = {"format": "json", "fields": {"k": {"bias": -273.15}}}
    assert parsed(kelvin, b'{"k": 294.65}') == {"k": 21.5}


def test_explicit_decimals() -> None:
    config = {"format": "kv", "fields": {"v": {"decimals": 1}, "w": {"scale": 0.001,
                                                                   "decimals": 2}}}
    # 12345 * 0.001 is 12.345 exactly: a tie, rounded half to even (see test_exact_numbers).
    assert parsed(config, b"v=21.46,w=12345") == {"v": 21.5, "w": 12.34}
    with pytest.raises(ValidationError, match="scale, bias and decimals"):
        PARSE.validate_python({"format": "kv", "fields": {"n": {"type": "int", "decimals": 1}}})


def test_struct_fields_round_and_integers_stay_integers() -> None:
    config = {
        "format": "struct",
        "byte_order": "little",
        "fields": {
            "t": {"offset": 0, "type": "i16", "scale": 0.1},
            "n": {"offset": 2, "type": "u16"},
            "v": {"offset": 4, "type": "f32", "decimals": 2},
            "h": {"offset": 8, "type": "u16", "scale": 0.01, "bias": 10},
        },
    }
    frame = struct.pack("<hHfH", 3, 7, 21.3, 4321)
    result = parsed(config, frame)
    assert result == {"t": 0.3, "n": 7, "v": 21.3, "h": 53.21}
    assert isinstance(result["n"], int)
    infinite = {"format": "struct", "fields": {"d": {"offset": 0, "type": "f64", "scale": 10}}}
    assert rejection(infinite, struct.pack(">d", 1e308)) == "field 'd': inf is not a finite number"


def test_the_docstring_scale_example_gives_exactly_21_5() -> None:
    assert _parsing.__doc__ is not None
    block = _parsing.__doc__.split("```yaml\n", 1)[1].split("```", 1)[0]
    scaled = yaml.safe_load(block)[2]
    assert parsed(scaled, b"raw=615") == {"temperature": 21.5}
