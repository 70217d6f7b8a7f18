"""Device time (``time_field:``): each format read, checked against an injected
gateway clock (the frame's ``received``), the fallback or the rejection, and the
counters the driver's health gets.

Expected moments are computed with ``datetime`` from the calendar, not with the
parser's own code.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter

from tidegate.drivers.parsing.config import TimeFieldSpec
from tidegate.drivers.parsing.device_time import device_time
from tidegate.drivers.parsing.parse import FrameParser, FrameRejected, ParseConfig, TimeReport

PARSE: TypeAdapter[ParseConfig] = TypeAdapter(ParseConfig)


def at(text: str) -> float:
    """Seconds since 1970 of an ISO time (UTC unless it says otherwise)."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


NOW = at("2026-12-02T06:55:00")
"""The gateway's clock in these tests (a frame's ``received``)."""


class Tallies(Counter[str]):
    """Counters by name, as ``DriverHealth.counters`` holds them."""

    def tally(self, counter: str) -> None:
        self[counter] += 1


class Device:
    """A parser with its counters, as a driver's health would hold them."""

    def __init__(self, config: dict[str, Any], report: TimeReport | None = None) -> None:
        self.counters = Tallies()
        self.report = report or TimeReport("probe", self.counters.tally)
        self.parser = FrameParser(PARSE.validate_python(config), "probe", self.report)

    def time(self, frame: bytes, received: float = NOW) -> float:
        """The time of the frame's events (all share it)."""
        times = {event.time for event in self.parser.parse(frame, received)}
        assert len(times) == 1
        return times.pop()

    def rejection(self, frame: bytes, received: float = NOW) -> str:
        with pytest.raises(FrameRejected) as caught:
            self.parser.parse(frame, received)
        return str(caught.value)


def kv(time_field: dict[str, Any], **keys: Any) -> dict[str, Any]:
    return {"format": "kv", "fields": {"t": {}}, "time_field": time_field, **keys}


# --- the formats ----------------------------------------------------------------------


def test_epoch_seconds_and_milliseconds() -> None:
    seconds = Device(kv({"field": "ts"}))  # epoch_s is the default
    assert seconds.time(b"t=1,ts=1796194440.25") == NOW - 59.75
    assert seconds.time(b"t=1,ts=1796194500") == NOW
    millis = Device({"format": "json", "fields": {"t": {}},
                     "time_field": {"field": "ts", "format": "epoch_ms"}})
    assert millis.time(b'{"t": 1, "ts": 1796194499875}') == NOW - 0.125
    assert millis.time(b'{"t": 1, "ts": "1796194500000"}') == NOW  # a string of digits too
    assert seconds.counters == {"device_time": 2} and millis.counters == {"device_time": 2}


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("2026-12-02T06:54:00Z", "2026-12-02T06:54:00+00:00"),
        ("2026-12-02t06:54:00z", "2026-12-02T06:54:00+00:00"),  # RFC 3339 allows lower case
        ("2026-12-02 06:54:00Z", "2026-12-02T06:54:00+00:00"),  # and a space
        ("2026-12-02T07:54:30+01:00", "2026-12-02T06:54:30+00:00"),
        ("2026-12-02T01:24:00-05:30", "2026-12-02T06:54:00+00:00"),
        ("2026-12-01T23:54:00-07:00", "2026-12-02T06:54:00+00:00"),  # the day before, local
        ("2026-12-02T06:54:59.125Z", "2026-12-02T06:54:59.125+00:00"),
        ("2026-12-02T06:54:59.000001+00:00", "2026-12-02T06:54:59.000001+00:00"),
        # A leap second (u-blox receivers send it) is the last moment of second 59.
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999+00:00"),
        ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:59.999+00:00"),
        ("2017-01-01T00:59:60+01:00", "2016-12-31T23:59:59.999+00:00"),
    ],
)
def test_rfc3339_with_offsets_and_fractions(sent: str, expected: str) -> None:
    device = Device({"format": "json", "fields": {"t": {}},
                     "time_field": {"field": "at", "format": "rfc3339", "max_behind": "3650d"}})
    frame = b'{"t": 1, "at": "%s"}' % sent.encode()
    assert device.time(frame) == pytest.approx(at(expected), abs=1e-6)
    assert device.counters == {"device_time": 1}


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        ("2026-12-02T06:54:00", "has no UTC offset"),
        ("2026-12-02", "is not an RFC 3339 time"),
        ("2026-02-30T06:54:00Z", "day is out of range for month"),
        ("2026-12-02T24:00:00Z", "hour must be in 0..23"),
        ("1796194500", "is not an RFC 3339 time"),
        # Digits of other scripts (full-width here) are not RFC 3339's ASCII digits.
        ("\uff12\uff10\uff12\uff16-12-02T06:54:00Z", "is not an RFC 3339 time"),
        ("2026-12-02T06:54:61Z", "second must be in 0..59"),
    ],
)
def test_rfc3339_unparsable_falls_back_and_says_why(sent: str, why: str) -> None:
    device = Device({"format": "json", "fields": {"t": {}},
                     "time_field": {"field": "at", "format": "rfc3339"}})
    assert device.time(b'{"t": 1, "at": "%s"}' % sent.encode()) == NOW
    assert device.counters == {"clock_fallback": 1, "device_time_unparsable": 1}
    strict = Device({"format": "json", "fields": {"t": {}},
                     "time_field": {"field": "at", "format": "rfc3339", "on_invalid": "reject"}})
    assert why in strict.rejection(b'{"t": 1, "at": "%s"}' % sent.encode())


RMC_PATTERN = (
    r"\$GPRMC,(?P<utc>[\d.]+),A,(?P<lat>[\d.]+),N,[\d.]+,E,[\d.]+,[\d.]+,(?P<date>\d{6}),.*"
)
RMC: dict[str, Any] = {  # what a regex pulls out of $GPRMC, after the framer checked its *hh
    "format": "regex",
    "match": "full",
    "pattern": RMC_PATTERN,
    "fields": {"lat": {}},
    "time_field": {"field": "utc", "format": "hhmmss", "date_field": "date"},
}


def rmc(utc: str, date: str) -> bytes:
    return f"$GPRMC,{utc},A,4807.038,N,01131.000,E,022.4,084.4,{date},003.1,W".encode()


def test_hhmmss_with_an_nmea_date() -> None:
    device = Device(RMC)
    assert device.time(rmc("065430", "021226")) == at("2026-12-02T06:54:30")
    assert device.time(rmc("065459.75", "021226")) == at("2026-12-02T06:54:59.75")
    # With a date, a fix is on that date: one a day old is behind, not "nearest".
    assert device.time(rmc("065500", "011226"), received=NOW + 5) == at("2026-12-01T06:55:00")
    assert device.counters == {"device_time": 3}


def test_hhmmss_leap_second_and_foreign_digits() -> None:
    device = Device(RMC)
    leap = at("2016-12-31T23:59:59.999")
    assert device.time(rmc("235960.00", "311216"), received=leap) == leap
    assert device.time(rmc("235961", "311216"), received=leap) == leap  # not a time
    assert device.counters == {"device_time": 1, "clock_fallback": 1,
                               "device_time_unparsable": 1}
    # Arabic-Indic digits: int() reads them, a receiver never sends them.
    nearest = Device(HHMMSS)
    assert nearest.time("t=1,utc=\u0660\u0666\u0665\u0664\u0665\u0665".encode()) == NOW
    assert nearest.counters == {"clock_fallback": 1, "device_time_unparsable": 1}


def test_hhmmss_with_an_iso_date() -> None:
    device = Device({"format": "csv", "columns": ["day", "utc", "t"], "fields": {"t": {}},
                     "time_field": {"field": "utc", "format": "hhmmss", "date_field": "day",
                                    "date_format": "yyyy-mm-dd"}})
    assert device.time(b"2026-12-02,065410.5,21.5") == at("2026-12-02T06:54:10.5")


def test_hhmmss_date_missing_or_impossible_is_counted() -> None:
    device = Device({**RMC, "pattern": RMC_PATTERN.replace("{6})", "{6})?")})
    assert device.time(rmc("065430", "")) == NOW  # the receiver has no date yet
    assert device.time(rmc("065430", "310226")) == NOW  # 31 February
    assert device.time(rmc("255430", "021226")) == NOW  # hour 25
    assert device.time(rmc("0654", "021226")) == NOW  # hhmm
    assert device.counters == {
        "clock_fallback": 4, "device_time_missing": 1, "device_time_unparsable": 3,
    }


HHMMSS = kv({"field": "utc", "format": "hhmmss"})
"""Without a date field: the UTC date that puts the time nearest the gateway's clock."""


@pytest.mark.parametrize(
    ("utc", "received", "expected"),
    [
        ("065455", "2026-12-02T06:55:00", "2026-12-02T06:54:55"),
        # A fix at 23:59:59.9 read just after midnight is yesterday's.
        ("235959.9", "2026-12-03T00:00:01", "2026-12-02T23:59:59.9"),
        # A fix just after midnight, read by a gateway whose clock is a second slow.
        ("000000.5", "2026-12-02T23:59:59", "2026-12-03T00:00:00.5"),
        # And across a month and a year end.
        ("235958", "2027-01-01T00:00:30", "2026-12-31T23:59:58"),
    ],
)
def test_hhmmss_without_a_date_takes_the_nearest_day(
    utc: str, received: str, expected: str
) -> None:
    device = Device(HHMMSS)
    assert device.time(f"t=1,utc={utc}".encode(), at(received)) == pytest.approx(
        at(expected), abs=1e-6
    )
    assert device.counters == {"device_time": 1}


def test_hhmmss_as_a_json_number_keeps_its_leading_zeros() -> None:
    device = Device({"format": "json", "fields": {"t": {}},
                     "time_field": {"field": "utc", "format": "hhmmss"}})
    morning = at("2026-12-02T09:30:05")
    assert device.time(b'{"t": 1, "utc": 93000}', morning) == at("2026-12-02T09:30:00")
    assert device.time(b'{"t": 1, "utc": 93001.5}', morning) == at("2026-12-02T09:30:01.5")
    assert device.time(b'{"t": 1, "utc": 1e300}', morning) == morning
    assert device.time(b'{"t": 1, "utc": true}', morning) == morning
    assert device.counters == {
        "device_time": 2, "clock_fallback": 2, "device_time_unparsable": 2,
    }


# --- the tolerance --------------------------------------------------------------------


def test_tolerance_edges_are_within_and_just_beyond_is_not() -> None:
    device = Device(kv({"field": "ts", "max_ahead": "30s", "max_behind": "1h"}))
    assert device.time(b"t=1,ts=%d" % (NOW + 30)) == NOW + 30  # exactly at the limit
    assert device.time(b"t=1,ts=%.3f" % (NOW + 30.001)) == NOW
    assert device.time(b"t=1,ts=%d" % (NOW - 3600)) == NOW - 3600
    assert device.time(b"t=1,ts=%.3f" % (NOW - 3600.001)) == NOW
    assert device.counters == {
        "device_time": 2,
        "clock_fallback": 2,
        "device_time_ahead": 1,
        "device_time_behind": 1,
    }


def test_default_tolerance_is_two_minutes_ahead_and_seven_days_behind() -> None:
    device = Device(kv({"field": "ts"}))
    for offset in (120.0, 120.5, -7 * 86400.0, -7 * 86400.0 - 1):
        device.time(b"t=1,ts=%.1f" % (NOW + offset))
    assert device.counters == {
        "device_time": 2,
        "clock_fallback": 2,
        "device_time_ahead": 1,
        "device_time_behind": 1,
    }


def test_missing_and_unparsable_times_fall_back_and_are_counted() -> None:
    device = Device(kv({"field": "ts"}))
    assert device.time(b"t=1") == NOW
    assert device.time(b"t=1,ts=yesterday") == NOW
    assert device.time(b"t=1,ts=nan") == NOW
    # Python's float() reads these; a device's epoch is digits with a fraction.
    for text in (b"1_796_194_500", b"1.7961945e9", b"inf", b"0x6b0f8f44"):
        assert device.time(b"t=1,ts=" + text) == NOW
    assert device.counters == {
        "clock_fallback": 7,
        "device_time_missing": 1,
        "device_time_unparsable": 6,
    }


def test_reject_mode_sends_the_frame_to_the_dead_letters_with_the_reason() -> None:
    device = Device(kv({"field": "ts", "on_invalid": "reject"}))
    assert device.rejection(b"t=1,ts=%d" % (NOW + 3 * 3600)) == (
        "device time is 3.0 h ahead of the gateway's clock (max_ahead 2.0 min)"
    )
    assert device.rejection(b"t=1,ts=%d" % (NOW - 30 * 86400)) == (
        "device time is 30.0 d behind the gateway's clock (max_behind 7.0 d)"
    )
    assert device.rejection(b"t=1") == "time field 'ts' is missing"
    assert device.rejection(b"t=1,ts=soon") == "time field 'ts': 'soon' is not a number"
    assert device.time(b"t=1,ts=%d" % NOW) == NOW
    # Counted by reason; no clock_fallback: no event got the gateway's clock.
    assert device.counters == {
        "device_time_ahead": 1,
        "device_time_behind": 1,
        "device_time_missing": 1,
        "device_time_unparsable": 1,
        "device_time": 1,
    }


def test_a_frame_rejected_for_its_values_counts_no_time() -> None:
    device = Device(kv({"field": "ts"}, unlisted="reject"))
    assert device.rejection(b"x=1,ts=%d" % NOW).startswith("unexpected key 'x'")
    assert device.rejection(b"ts=%d" % NOW) == "no configured field in the frame"
    assert device.counters == {}


def test_fallbacks_are_logged_once_an_hour_per_driver_and_problem(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counters = Tallies()
    clock = [0.0]  # the rate limiter's monotonic clock, stepped by the test
    report = TimeReport("gps", counters.tally, clock=lambda: clock[0])
    # The mqtt driver has a parser per source; they share the driver's report.
    first, second = Device(kv({"field": "ts"}), report), Device(kv({"field": "ts"}), report)
    with caplog.at_level(logging.WARNING, logger="tidegate.drivers.parsing"):
        for device in (first, second, first):
            device.time(b"t=1,ts=%d" % (NOW + 3600))
        second.time(b"t=1")  # another problem: its own line
        first.time(b"t=1")
        clock[0] = 3599.0
        first.time(b"t=1,ts=%d" % (NOW + 7200))  # the same problem within the hour
        clock[0] = 3600.0
        first.time(b"t=1,ts=%d" % (NOW + 7200))  # an hour later: logged again
    assert counters == {"clock_fallback": 7, "device_time_ahead": 5, "device_time_missing": 2}
    note = "[limit of 1 like this per 60 min reached; more are suppressed for 60 min]"
    assert [r.getMessage() for r in caplog.records] == [
        "gps: device time is 60.0 min ahead of the gateway's clock (max_ahead 2.0 min); using "
        f"the gateway's clock (counted as clock_fallback and device_time_ahead) {note}",
        "gps: time field 'ts' is missing; using the gateway's clock (counted as "
        f"clock_fallback and device_time_missing) {note}",
        "3 more lines like “%s: device time is 60.0 min ahead of the gateway's clock "
        "(max_ahead 2.0 min);...” were suppressed in 60 min",
        "gps: device time is 2.0 h ahead of the gateway's clock (max_ahead 2.0 min); using "
        f"the gateway's clock (counted as clock_fallback and device_time_ahead) {note}",
    ]


def test_two_drivers_are_logged_apart_and_a_rejection_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gps = Device(kv({"field": "ts"}), TimeReport("gps"))
    logger = Device(kv({"field": "ts", "on_invalid": "reject"}), TimeReport("logger"))
    other = Device(kv({"field": "ts"}), TimeReport("meter"))
    with caplog.at_level(logging.WARNING, logger="tidegate.drivers.parsing"):
        gps.time(b"t=1")
        other.time(b"t=1")
        logger.rejection(b"t=1")  # a dead letter says why; no log line
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "gps: time field 'ts' is missing", "meter: time field 'ts' is missing",
    ]


def test_an_epoch_in_the_other_unit_gets_a_hint() -> None:
    seconds = Device(kv({"field": "ts", "on_invalid": "reject"}))
    assert seconds.rejection(b"t=1,ts=%d" % (NOW * 1000)).endswith(
        "ahead of the gateway's clock (max_ahead 2.0 min; milliseconds? use `format: epoch_ms`)"
    )
    millis = Device(kv({"field": "ts", "format": "epoch_ms", "on_invalid": "reject"}))
    assert millis.rejection(b"t=1,ts=%d" % NOW).endswith(
        "behind the gateway's clock (max_behind 7.0 d; seconds? use `format: epoch_s`)"
    )
    # A time merely wrong (a device clock reset to 2000) gets no hint.
    assert millis.rejection(b"t=1,ts=946684800000") == (
        "device time is 9832.3 d behind the gateway's clock (max_behind 7.0 d)"
    )


# --- where the time fields sit in a record --------------------------------------------


def test_time_fields_are_not_values_and_are_known_keys() -> None:
    device = Device({**HHMMSS, "unlisted": "include"})
    events = device.parser.parse(b"t=1,utc=065455,rssi=-70", NOW)
    assert sorted(e.name for e in events) == ["rssi", "t"]
    strict = Device({"format": "kv", "fields": {"lat": {}}, "unlisted": "reject",
                     "time_field": RMC["time_field"]})
    assert strict.time(b"lat=1,utc=065455,date=021226") == at("2026-12-02T06:54:55")
    assert strict.rejection(b"lat=1,utc=065455,date=021226,x=1").startswith("unexpected key")


def test_a_dotted_json_key_reaches_a_nested_time() -> None:
    device = Device({"format": "json", "fields": {"t": {}},
                     "time_field": {"field": "meta.ts", "format": "epoch_ms"}})
    assert device.time(b'{"t": 1, "meta": {"ts": 1796194499000}}') == NOW - 1


def test_a_dotted_json_time_key_is_known_with_unlisted_reject() -> None:
    device = Device({"format": "json", "fields": {"env.t": {}}, "unlisted": "reject",
                     "time_field": {"field": "meta.ts", "format": "epoch_ms"}})
    assert device.time(b'{"env": {"t": 1}, "meta": {"ts": 1796194499000}}') == NOW - 1
    assert device.rejection(
        b'{"env": {"t": 1}, "meta": {"ts": 1796194499000}, "x": 2}'
    ).startswith("unexpected key 'x'")
    assert device.counters == {"device_time": 1}


def test_struct_time_field_u32_seconds_and_u64_milliseconds() -> None:
    layout = {"format": "struct", "fields": {"t": {"offset": 0, "type": "i16"}}}
    seconds = Device({**layout, "time_field": {"offset": 2, "type": "u32"}})
    assert seconds.time(struct.pack(">hI", 215, int(NOW) - 10)) == NOW - 10
    millis = Device({**layout, "byte_order": "little",
                     "time_field": {"offset": 2, "type": "u64", "format": "epoch_ms"}})
    assert millis.time(struct.pack("<hQ", 215, int(NOW * 1000) + 500)) == NOW + 0.5
    assert millis.time(struct.pack("<hQ", 215, 0)) == NOW  # a device that lost its clock
    assert millis.counters == {"device_time": 1, "clock_fallback": 1, "device_time_behind": 1}
    assert seconds.rejection(struct.pack(">hH", 215, 1)) == (
        "frame of 4 bytes is too short for the time field (bytes 2..5)"
    )


# --- what a simulated device sends ----------------------------------------------------


@pytest.mark.parametrize("time_format", ["epoch_s", "epoch_ms", "rfc3339", "hhmmss"])
def test_a_simulated_device_time_reads_back(time_format: str) -> None:
    config = kv({"field": "ts", "format": time_format, "max_ahead": 0, "max_behind": 0.011})
    if time_format == "hhmmss":
        config["time_field"] |= {"date_field": "d"}
    spec = TimeFieldSpec.model_validate(config["time_field"])
    sent = NOW + 0.257
    pairs = {key: device_time(spec, key, sent) for key in ("ts", "d")}
    frame = f"t=1,ts={pairs['ts']}" + (f",d={pairs['d']}" if spec.date_field else "")
    device = Device(config)
    assert sent - 0.011 <= device.time(frame.encode(), sent) <= sent
    assert device.counters == {"device_time": 1}
