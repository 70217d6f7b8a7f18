"""Parsers on known frames, config validation, and fuzzing: only FrameRejected escapes."""

from __future__ import annotations

import math
import re
import struct
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from tidegate.drivers.parsing import parse as _parsing
from tidegate.drivers.parsing.parse import FrameParser, FrameRejected, ParseConfig
from tidegate.event import Event

PARSE: TypeAdapter[ParseConfig] = TypeAdapter(ParseConfig)
RECEIVED = 1_700_000_000.25


def parser(config: dict[str, Any]) -> FrameParser:
    return FrameParser(PARSE.validate_python(config), "probe")


def values(events: list[Event]) -> dict[str, Any]:
    return {event.name: event.value for event in events}


def rejection(config: dict[str, Any], frame: bytes) -> str:
    with pytest.raises(FrameRejected) as caught:
        parser(config).parse(frame, RECEIVED)
    return str(caught.value)


# --- kv -----------------------------------------------------------------------------------

KV = {
    "format": "kv",
    "fields": {
        "T": {"name": "temperature", "unit": "°C", "tags": {"probe": "a"}},
        "H": {"name": "humidity", "unit": "%"},
        "door": {"type": "bool"},
        "count": {"type": "int"},
    },
    "tags": {"site": "roof"},
}


def test_kv_fields_become_events_with_units_and_tags() -> None:
    events = parser(KV).parse(b"T=21.5, H=40 ,door=0,count=0x1F,other=1", RECEIVED)
    assert [(e.name, e.value, e.unit) for e in events] == [
        ("temperature", 21.5, "°C"),
        ("humidity", 40.0, "%"),
        ("door", False, None),
        ("count", 31, None),
    ]
    assert all(e.source == "probe" and e.time == RECEIVED for e in events)


def test_kv_rejects_a_bad_boolean_and_a_bad_number() -> None:
    assert rejection(KV, b"T=21.5,door=ajar") == "field 'door': 'ajar' is not a boolean"
    assert rejection(KV, b"T=21.5x") == "field 'T': '21.5x' is not a number"
    assert rejection(KV, b"T=nan") == "field 'T': nan is not a finite number"
    assert rejection(KV, b"T=21.5,garbage") == "'garbage' is not a key=value pair"
    assert rejection(KV, b"T=2\xff") == "invalid utf-8 at byte 3"
    assert rejection(KV, b"X=1") == "no configured field in the frame"


def test_kv_tags_merge_and_types() -> None:
    events = parser(KV).parse(b"T=21.5,door=ON,count=7", RECEIVED)
    by_name = {e.name: e for e in events}
    assert by_name["temperature"].tags == {"site": "roof", "probe": "a"}
    assert by_name["door"].value is True
    assert by_name["count"].value == 7 and isinstance(by_name["count"].value, int)
    assert by_name["door"].tags == {"site": "roof"}


def test_kv_separators_are_configurable() -> None:
    config = {"format": "kv", "pair_separator": " ", "kv_separator": ":", "unlisted": "include"}
    events = parser(config).parse(b"T:21.5  H:40 ok:true name:pump", RECEIVED)
    assert values(events) == {"T": 21.5, "H": 40.0, "ok": True, "name": "pump"}


def test_as_mapping_makes_one_event() -> None:
    config = {**KV, "as": "mapping", "name": "weather"}
    (event,) = parser(config).parse(b"T=21.5,H=40", RECEIVED)
    assert event.name == "weather"
    assert event.value == {"temperature": 21.5, "humidity": 40.0}
    assert event.tags == {"site": "roof"}


def test_required_field() -> None:
    config = {"format": "kv", "fields": {"T": {"required": True}, "H": {}}}
    assert rejection(config, b"H=40") == "required field 'T' is missing"


def test_scale_and_bias() -> None:
    config = {"format": "kv", "fields": {"raw": {"name": "t", "scale": 0.1, "bias": -40}}}
    (event,) = parser(config).parse(b"raw=615", RECEIVED)
    assert event.value == pytest.approx(21.5)


# --- csv ----------------------------------------------------------------------------------


def test_csv_columns() -> None:
    config = {
        "format": "csv",
        "delimiter": ";",
        "columns": ["id", "_", "temperature", "door"],
        "fields": {"temperature": {"unit": "°C"}, "door": {"type": "bool"}},
    }
    events = parser(config).parse(b"7;x; 21.5 ;1", RECEIVED)
    assert values(events) == {"temperature": 21.5, "door": True}
    assert rejection(config, b"7;x;21.5") == "expected 4 columns, got 3"


def test_csv_unlisted_columns_are_auto_typed_when_included() -> None:
    config = {"format": "csv", "columns": ["a", "b", "c"], "unlisted": "include"}
    assert values(parser(config).parse(b"1.5,false,idle", RECEIVED)) == {
        "a": 1.5,
        "b": False,
        "c": "idle",
    }


# --- json ---------------------------------------------------------------------------------


def test_json_object_with_nested_key_and_device_time() -> None:
    config = {
        "format": "json",
        "fields": {"env.t": {"name": "temperature"}, "rssi": {"type": "int"}},
        "time_field": {"field": "ts", "format": "epoch_ms"},
    }
    events = parser(config).parse(b'{"env": {"t": 21.5}, "rssi": -61, "ts": 1700000001500}',
                                  RECEIVED)
    assert values(events) == {"temperature": 21.5, "rssi": -61}
    assert {e.time for e in events} == {1_700_000_001.5}


def test_json_rejects() -> None:
    config = {"format": "json", "unlisted": "include"}
    assert rejection(config, b"[1, 2]") == "expected a JSON object, got list"
    assert rejection(config, b'{"t": 1').startswith("not JSON")
    assert rejection(config, b'{"t": {"nested": 1}}') == "no configured field in the frame"


def test_json_unlisted_keeps_json_types() -> None:
    events = parser({"format": "json", "unlisted": "include"}).parse(
        b'{"a": 1, "b": true, "c": "x", "bad key": 2}', RECEIVED
    )
    assert values(events) == {"a": 1, "b": True, "c": "x"}


def test_rfc3339_device_time() -> None:
    config = {"format": "json", "fields": {"t": {}},
              "time_field": {"field": "at", "format": "rfc3339", "on_invalid": "reject"}}
    (event,) = parser(config).parse(b'{"t": 1, "at": "2023-11-14T22:13:20Z"}', RECEIVED)
    assert event.time == 1_700_000_000.0
    assert "no UTC offset" in rejection(config, b'{"t": 1, "at": "2023-11-14T22:13:20"}')
    assert rejection(config, b'{"t": 1}') == "time field 'at' is missing"


# --- regex (an NMEA sentence, after the line framer verified and removed its *hh) --------

GGA = {
    "format": "regex",
    "pattern": r"^\$GPGGA,(?P<utc>\d{6}),(?P<lat>[\d.]+),[NS],(?P<lon>[\d.]+),[EW],"
    r"(?P<fix>\d),(?P<satellites>\d+),(?P<hdop>[\d.]+),(?P<altitude>[-\d.]+),M",
    "fields": {
        "satellites": {"type": "int"},
        "altitude": {"unit": "m"},
        "fix": {"type": "bool"},
        "utc": {"type": "string"},
    },
}


def test_regex_on_an_nmea_gga_sentence() -> None:
    sentence = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert values(parser(GGA).parse(sentence, RECEIVED)) == {
        "satellites": 8,
        "altitude": 545.4,
        "fix": True,
        "utc": "123519",
    }
    assert rejection(GGA, b"$GPRMC,123519,A") == "does not match the pattern"


def test_regex_full_match_and_validation() -> None:
    config = {"format": "regex", "pattern": r"(?P<t>[-\d.]+)C", "match": "full",
              "fields": {"t": {}}}
    assert values(parser(config).parse(b"21.5C", RECEIVED)) == {"t": 21.5}
    assert rejection(config, b"t 21.5C") == "does not match the pattern"
    with pytest.raises(ValidationError, match="named groups"):
        PARSE.validate_python({"format": "regex", "pattern": r"(\d+)", "fields": {"t": {}}})
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        PARSE.validate_python({"format": "regex", "pattern": r"(?P<t>", "fields": {"t": {}}})


# --- struct -------------------------------------------------------------------------------

PMS5003_FIELDS = {
    "format": "struct",
    "byte_order": "big",
    "fields": {
        "pm1_0": {"offset": 10, "type": "u16", "unit": "µg/m³"},
        "pm2_5": {"offset": 12, "type": "u16", "unit": "µg/m³"},
        "pm10": {"offset": 14, "type": "u16", "unit": "µg/m³"},
    },
}


def test_struct_pms5003_layout() -> None:
    words = [28, 5, 8, 10, 4, 7, 9, 810, 225, 47, 6, 2, 0, 0x9700]
    frame = b"\x42\x4d" + b"".join(w.to_bytes(2, "big") for w in words)
    frame += (sum(frame) & 0xFFFF).to_bytes(2, "big")
    events = parser(PMS5003_FIELDS).parse(frame, RECEIVED)
    assert values(events) == {"pm1_0": 4, "pm2_5": 7, "pm10": 9}
    assert all(isinstance(e.value, int) and e.unit == "µg/m³" for e in events)
    assert "too short for field 'pm10'" in rejection(PMS5003_FIELDS, frame[:15])


def test_struct_types_byte_orders_and_scaling() -> None:
    config = {
        "format": "struct",
        "byte_order": "little",
        "fields": {
            "t": {"offset": 0, "type": "i16", "scale": 0.01},
            "p": {"offset": 2, "type": "u32", "byte_order": "big"},
            "v": {"offset": 6, "type": "f32"},
            "s": {"offset": 10, "type": "i8", "bias": 100},
            "d": {"offset": 11, "type": "f64"},
        },
    }
    frame = struct.pack("<h", -1234) + struct.pack(">I", 101325) + struct.pack("<f", 3.5)
    frame += struct.pack("<b", -5) + struct.pack("<d", -0.25)
    result = values(parser(config).parse(frame, RECEIVED))
    assert result == {"t": pytest.approx(-12.34), "p": 101325, "v": 3.5, "s": 95.0, "d": -0.25}
    nan = frame[:6] + struct.pack("<f", math.nan) + frame[10:]
    assert rejection(config, nan) == "field 'v': nan is not a finite number"


# --- raw ----------------------------------------------------------------------------------


def test_raw_text_and_hex() -> None:
    (event,) = parser({"format": "raw", "name": "line"}).parse(b"hello", RECEIVED)
    assert (event.name, event.value) == ("line", "hello")
    (event,) = parser({"format": "raw", "encoding": "hex"}).parse(b"\x42\x4d", RECEIVED)
    assert (event.name, event.value) == ("raw", "424d")
    assert rejection({"format": "raw", "encoding": "ascii"}, b"caf\xc3\xa9") == (
        "invalid ascii at byte 3"
    )


# --- config errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"format": "kv"}, "nothing is emitted"),
        ({"format": "kv", "fields": {"t": {"type": "int", "scale": 2}}}, "scale, bias"),
        ({"format": "csv", "columns": ["a"], "fields": {"b": {}}}, "not in `columns`"),
        ({"format": "kv", "fields": {"t": {"type": "float"}}}, "number"),
        ({"format": "struct", "fields": {"t": {"offset": 0, "type": "u24"}}}, "u16"),
        ({"format": "yaml"}, "json"),
    ],
)
def test_bad_parse_config_is_refused(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PARSE.validate_python(config)


# --- fuzzing ------------------------------------------------------------------------------

FUZZED_PARSERS = [
    KV,
    {"format": "kv", "unlisted": "include", "fields": {"a": {"type": "int"}}},
    {"format": "csv", "columns": ["a", "b"], "fields": {"a": {}, "b": {"type": "bool"}}},
    {"format": "json", "unlisted": "include", "fields": {"x.y": {"type": "int"}},
     "time_field": {"field": "ts", "format": "rfc3339"}},
    GGA,
    PMS5003_FIELDS,
    {"format": "raw"},
]


@pytest.mark.parametrize("config", FUZZED_PARSERS,
                         ids=["kv", "kv-unlisted", "csv", "json", "regex", "struct", "raw"])
@settings(max_examples=200, deadline=None)
@given(frame=st.one_of(
    st.binary(max_size=64),
    st.text(alphabet="TH=,.-0123456789eE:xy{}\"[]tsnaruefl ;\x00\xff", max_size=64).map(
        lambda text: text.encode()
    ),
))
def test_any_frame_gives_events_or_frame_rejected(config: dict[str, Any], frame: bytes) -> None:
    try:
        events = parser(config).parse(frame, RECEIVED)
    except FrameRejected as exc:
        assert str(exc)
        return
    assert events
    for event in events:
        value = event.value
        scalars = value.values() if isinstance(value, dict) else [value]
        for scalar in scalars:
            assert isinstance(scalar, int | float | bool | str)
            assert not isinstance(scalar, float) or math.isfinite(scalar)


def test_docstring_examples_load() -> None:
    assert _parsing.__doc__ is not None
    (block,) = re.findall(r"```yaml\n(.*?)```", _parsing.__doc__, re.S)
    examples = yaml.safe_load(block)
    assert [PARSE.validate_python(example).format for example in examples] == [
        "kv", "csv", "kv", "json", "regex", "struct",
    ]
