"""``select:``: a record parser parses the frames that begin with a selected prefix,
skips the others (``FrameSkipped``: not damage), and still rejects a selected frame
that is damaged."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from tidegate.drivers.parsing.parse import FrameParser, FrameRejected, FrameSkipped, ParseConfig

PARSE: TypeAdapter[ParseConfig] = TypeAdapter(ParseConfig)
RECEIVED = 1_700_000_000.25

RMC = {
    "format": "regex",
    "select": ["$GPRMC,", "$GNRMC,"],
    "match": "full",
    "pattern": r"\$G[PN]RMC,(?P<utc>[\d.]+),A,([^,]*,){4}(?P<speed>[\d.]+),.*",
    "fields": {"speed": {"unit": "kn"}, "utc": {"type": "string"}},
}


def parser(config: dict[str, Any]) -> FrameParser:
    return FrameParser(PARSE.validate_python(config), "probe")


def outcome(config: dict[str, Any], frame: bytes) -> str:
    """``parsed``, ``skipped: <reason>`` or ``rejected: <reason>``."""
    try:
        parser(config).parse(frame, RECEIVED)
    except FrameSkipped as exc:
        return f"skipped: {exc}"
    except FrameRejected as exc:
        return f"rejected: {exc}"
    return "parsed"


def test_selected_frames_are_parsed_and_other_kinds_skipped() -> None:
    rmc = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"
    events = parser(RMC).parse(rmc, RECEIVED)
    assert [(e.name, e.value, e.unit) for e in events] == [
        ("speed", 22.4, "kn"), ("utc", "123519", None),
    ]
    assert outcome(RMC, rmc.replace(b"$GP", b"$GN")) == "parsed"  # either prefix
    gga = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert outcome(RMC, gga) == "skipped: not selected: b'$GPGGA,123519,48'"
    assert outcome(RMC, b"$GPGSV,2,1,08,01,40,083,46").startswith("skipped")
    # Not valid UTF-8, but not the wanted kind either: skipped before any decoding.
    assert outcome(RMC, b"\xb5b\x01\x07").startswith("skipped")


def test_a_selected_frame_that_does_not_parse_is_still_rejected() -> None:
    """Never a wrong number: a frame that says it is the wanted kind and is damaged
    is a dead letter, as without ``select``."""
    cut = b"$GPRMC,123519,A,4807.038,N,01131.0"  # cut short
    assert outcome(RMC, cut) == "rejected: does not match the pattern"
    assert outcome(RMC, b"$GPRMC,\xff").startswith("rejected: invalid utf-8")
    # The prefix must be the frame's beginning, not somewhere in it.
    assert outcome(RMC, b"xx$GPRMC,123519,A,,,,,1.0,").startswith("skipped")


def test_without_select_every_frame_is_parsed_as_before() -> None:
    config = {key: value for key, value in RMC.items() if key != "select"}
    gga = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert outcome(config, gga) == "rejected: does not match the pattern"


def test_select_works_for_every_record_format() -> None:
    kv = {"format": "kv", "select": "T=", "fields": {"T": {}}}
    assert outcome(kv, b"T=21.5") == "parsed"
    assert outcome(kv, b"STATUS=booting").startswith("skipped")
    assert outcome(kv, b"T=21.5,T=22").startswith("rejected: key 'T' appears twice")
    csv = {
        "format": "csv", "select": "$GPVTG,",
        "columns": ["_", "course", "_", "_", "_", "_", "_", "speed", "_", "_"],
        "fields": {"speed": {"unit": "km/h"}},
    }
    assert parser(csv).parse(b"$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A", RECEIVED)[0].value == 10.2
    assert outcome(csv, b"$GPVTG,054.7,T,034.4,M,005.5").startswith("rejected: expected 10")
    assert outcome(csv, b"$GPZDA,201530.00,04,07,2002,00,00").startswith("skipped")
    json = {"format": "json", "select": '{"t"', "fields": {"t": {}}}
    assert outcome(json, b'{"t": 1}') == "parsed"
    assert outcome(json, b'{"log": "rebooted"}').startswith("skipped")


@pytest.mark.parametrize(
    ("select", "encoding", "message"),
    [
        ([], "utf-8", "at least 1 item"),
        ("", "utf-8", "at least 1 character"),
        (["$GPRMC,", ""], "utf-8", "at least 1 character"),
        ("°C", "ascii", "'°C' cannot be written in the frame's encoding ascii"),
        (7, "utf-8", 'give a prefix or a list of them, e.g. "\\$GPRMC,", not 7'),
    ],
)
def test_select_config_errors(select: object, encoding: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PARSE.validate_python(
            {"format": "kv", "select": select, "encoding": encoding, "fields": {"a": {}}}
        )


def test_select_is_for_record_formats_only() -> None:
    """``raw`` and ``struct`` have no select: a binary frame is picked by framing."""
    with pytest.raises(ValidationError, match="select"):
        PARSE.validate_python({"format": "raw", "select": "$"})
