"""A step of the gateway's clock corrects the gateway's times, never a device's.

The events come from a real ``FrameParser`` with ``time_field:`` (so their
``time_source`` is what a driver would give them), go into a real outbox (a
SQLite file) whose ``ClockWatcher`` reads a controllable wall clock, and are read
back from it as the uplink would publish them. The scenario is a Pi whose clock
is half a minute slow until NTP steps it, and a GPS receiver whose clock is
right all along.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter

from tests.outbox.fake_clock import FakeClock
from tidegate.clock import RELEASE_EPOCH
from tidegate.drivers.parsing.parse import FrameParser, ParseConfig
from tidegate.event import Event, new_event
from tidegate.outbox import segment_store
from tidegate.outbox.integrity import intact
from tidegate.outbox.schema import SEGMENT_TABLES
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing
from tidegate.payload import encode_event, event_document

PARSE: TypeAdapter[ParseConfig] = TypeAdapter(ParseConfig)

TRUE_NOW = datetime(2026, 12, 2, 7, 30, tzinfo=UTC).timestamp()
SLOW = 30.0
"""How far the gateway's clock is behind before NTP steps it (more than clock_step)."""


def parser(**time_field: Any) -> FrameParser:
    """A data logger's parse section: ``t=21.5,ts=<epoch ms>``."""
    config = {"format": "kv", "fields": {"t": {}}, "time_field": {"field": "ts", **time_field}}
    return FrameParser(PARSE.validate_python(config), "logger")


def ms(moment: float) -> bytes:
    return b"%d" % round(moment * 1000)


def out(event: Event) -> Outgoing:
    return Outgoing(event, "t/logger", 1, False)


def stored(path: Path) -> dict[float, dict[str, Any]]:
    """Per value, the row as stored: payload document, acceptance time, synced flag."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT payload, crc, accepted, synced FROM outbox").fetchall()
        for cls in range(3):  # a commit's events, as one segment
            for seg in segment_store.every(db, cls):
                accepted, synced = db.execute(
                    f"SELECT accepted, synced FROM {SEGMENT_TABLES[cls]} WHERE id = ?",  # noqa: S608
                    (seg.id,),
                ).fetchone()
                decoded = segment_store.read(db, cls, seg.id)
                rows += [
                    (decoded.payload(i), decoded.crcs[i], accepted, synced)
                    for i in range(seg.first - seg.id, len(decoded))
                ]
    found = {}
    for payload, crc, accepted, synced in rows:
        assert intact(payload, crc)  # a changed payload got a new checksum, a kept one its own
        doc = orjson.loads(payload)
        found[doc["value"]] = {"doc": doc, "raw": payload, "accepted": accepted, "synced": synced}
    return found


def seconds(doc: dict[str, Any]) -> float:
    return datetime.fromisoformat(doc["time"]).timestamp()


def test_a_step_moves_the_gateways_times_and_keeps_the_devices(tmp_path: Path) -> None:
    clocks = FakeClock(TRUE_NOW - SLOW)  # booted with a stale clock: plausible, so trusted
    box = Outbox(tmp_path / "o.db", "gw", clock=clocks.watcher())
    box.open()
    assert box.clock.trusted
    logger = parser(format="epoch_ms")
    received = clocks.wall()
    gps_time = TRUE_NOW - 0.25  # the device is right: 29.75 s ahead of the slow clock
    (on_device,) = logger.parse(b"t=1,ts=" + ms(gps_time), received)
    (on_gateway,) = logger.parse(b"t=2", received)  # no time in the frame: arrival time
    assert (on_device.time_source, on_gateway.time_source) == ("device", None)
    box.put([out(on_device), out(on_gateway)])
    before = stored(tmp_path / "o.db")

    clocks.wall_now += SLOW  # NTP steps the wall clock; the monotonic one does not move
    delta = box.clock.check()
    assert delta is not None and delta == pytest.approx(SLOW)
    assert box.correct_clock(delta) == 1  # only the gateway's time was corrected

    after = stored(tmp_path / "o.db")
    device, gateway = after[1]["doc"], after[2]["doc"]
    assert after[1]["raw"] == before[1]["raw"]  # untouched: same bytes, same checksum
    assert seconds(device) == pytest.approx(gps_time, abs=1e-6)
    assert device["time_source"] == "device" and "time_corrected" not in device
    assert seconds(gateway) == pytest.approx(received + SLOW, abs=1e-6)
    assert gateway["time_corrected"] is True and "time_source" not in gateway
    # Both were accepted on the old clock: both acceptance times move (max_age ages
    # them from there), and both count as synced now.
    for value in (1, 2):
        assert after[value]["accepted"] == pytest.approx(before[value]["accepted"] + SLOW)
        assert after[value]["synced"] == 1
    # What the uplink takes is what is stored; nothing was dead-lettered.
    taken = {orjson.loads(r.payload)["value"]: r.payload for r in box.take(10)}
    assert taken == {1: after[1]["raw"], 2: after[2]["raw"]}
    box.close()


def test_an_untrusted_clock_marks_only_the_gateways_times(tmp_path: Path) -> None:
    # A Pi without an RTC boots in 1971, and so does a logger whose clock battery died:
    # its time is within the tolerance of the gateway's clock and is used as it is.
    clocks = FakeClock(86400.0 * 365)
    box = Outbox(tmp_path / "o.db", "gw", clock=clocks.watcher())
    box.open()
    assert not box.clock.trusted
    logger = parser(format="epoch_s")
    received = clocks.wall()
    (on_device,) = logger.parse(b"t=1,ts=%d" % (received - 60), received)
    (on_gateway,) = logger.parse(b"t=2,ts=%d" % (received + 3600), received)  # too far ahead
    assert (on_device.time_source, on_gateway.time_source) == ("device", None)
    box.put([out(on_device), out(on_gateway)])
    before = stored(tmp_path / "o.db")
    # time_synced: false speaks of the gateway's clock: only its time carries it.
    assert "time_synced" not in before[1]["doc"]
    assert before[2]["doc"]["time_synced"] is False
    assert before[1]["synced"] == before[2]["synced"] == 0  # both accepted on that clock

    step = RELEASE_EPOCH + 1e6 - clocks.wall_now
    clocks.wall_now += step
    delta = box.clock.check()
    assert delta is not None and delta == pytest.approx(step)
    assert box.correct_clock(delta) == 1

    after = stored(tmp_path / "o.db")
    assert after[1]["raw"] == before[1]["raw"]
    assert seconds(after[1]["doc"]) == received - 60
    gateway = after[2]["doc"]
    assert seconds(gateway) == pytest.approx(received + step, abs=1e-6)
    assert gateway["time_corrected"] is True and "time_synced" not in gateway
    assert [after[v]["synced"] for v in (1, 2)] == [1, 1]
    box.close()


def test_a_second_step_still_leaves_the_device_time_alone(tmp_path: Path) -> None:
    clocks = FakeClock(TRUE_NOW - SLOW)
    box = Outbox(tmp_path / "o.db", "gw", clock=clocks.watcher())
    box.open()
    logger = parser(format="epoch_ms")
    gps_time = TRUE_NOW - 1
    # The outbox stamps acceptance with the real clock (time.time()), not the test's.
    before = time.time()
    box.put([out(e) for e in logger.parse(b"t=1,ts=" + ms(gps_time), clocks.wall())])
    after = time.time()
    for step in (SLOW, -5.0):  # NTP steps forward, then a bad server pulls it back
        clocks.wall_now += step
        delta = box.clock.check()
        assert delta is not None
        assert box.correct_clock(delta) == 0
    (row,) = stored(tmp_path / "o.db").values()
    assert seconds(row["doc"]) == pytest.approx(gps_time, abs=1e-6)
    assert "time_corrected" not in row["doc"]
    # Acceptance times are the gateway's: both steps move them.
    assert before + SLOW - 5.0 <= row["accepted"] <= after + SLOW - 5.0
    box.close()


# --- which events say the device gave their time --------------------------------------


NOW = TRUE_NOW


@pytest.mark.parametrize(
    ("config", "frame", "source"),
    [
        pytest.param(
            {"format": "kv", "fields": {"t": {}}, "time_field": {"field": "ts"}},
            b"t=1,ts=%d" % (NOW - 10),
            "device",
            id="device time used",
        ),
        pytest.param(
            {"format": "kv", "fields": {"t": {}}, "time_field": {"field": "ts"}},
            b"t=1,ts=%d" % (NOW + 3600),
            None,
            id="ahead: the gateway's clock",
        ),
        pytest.param(
            {"format": "kv", "fields": {"t": {}}, "time_field": {"field": "ts"}},
            b"t=1,ts=yesterday",
            None,
            id="unparsable: the gateway's clock",
        ),
        pytest.param(
            {"format": "kv", "fields": {"t": {}}, "time_field": {"field": "ts"}},
            b"t=1",
            None,
            id="missing: the gateway's clock",
        ),
        pytest.param({"format": "kv", "fields": {"t": {}}}, b"t=1", None, id="no time_field"),
        pytest.param(
            {
                "format": "csv",
                "columns": ["t", "h", "at"],
                "fields": {"t": {}, "h": {}},
                "as": "mapping",
                "name": "climate",
                "time_field": {"field": "at", "format": "rfc3339"},
            },
            b"21.5,40,2026-12-02T07:29:00Z",
            "device",
            id="one mapping event, device time",
        ),
        pytest.param(
            {
                "format": "struct",
                "fields": {"t": {"offset": 0, "type": "i16"}},
                "time_field": {"offset": 2, "type": "u32"},
            },
            b"\x00\x15" + int(NOW - 5).to_bytes(4, "big"),
            "device",
            id="struct, device time",
        ),
        pytest.param(
            {
                "format": "struct",
                "fields": {"t": {"offset": 0, "type": "i16"}},
                "time_field": {"offset": 2, "type": "u32"},
            },
            b"\x00\x15\x00\x00\x00\x00",
            None,
            id="struct, zero time: the gateway's clock",
        ),
        pytest.param({"format": "raw", "name": "line"}, b"hello", None, id="raw"),
    ],
)
def test_only_a_used_device_time_is_marked(
    config: dict[str, Any], frame: bytes, source: str | None
) -> None:
    events = FrameParser(PARSE.validate_python(config), "dev").parse(frame, NOW)
    assert events
    assert {e.time_source for e in events} == {source}
    if source is None:
        assert {e.time for e in events} == {NOW}
    else:
        assert all(e.time < NOW for e in events)


def test_the_payload_names_the_device_clock_and_nothing_else_changes() -> None:
    plain = new_event("gps", "speed", 1.5, unit="kn", tags={"boat": "a"}, time=TRUE_NOW)
    device = replace(plain, time_source="device")
    # An event without a device time is encoded exactly as before this field existed.
    assert encode_event(plain, 7, "gw") == (
        b'{"id":"' + plain.id.encode() + b'","gateway":"gw","source":"gps","name":"speed",'
        b'"value":1.5,"time":"2026-12-02T07:30:00.000000Z","seq":7,"unit":"kn",'
        b'"tags":{"boat":"a"}}'
    )
    doc = orjson.loads(encode_event(device, 7, "gw"))
    assert doc == {**orjson.loads(encode_event(plain, 7, "gw")), "time_source": "device"}
    # tidegate tail and rules test show it too (they use the same document).
    assert event_document(device, with_id=False)["time_source"] == "device"
    assert "time_source" not in event_document(plain, with_id=False)
    # On an untrusted clock only the gateway's time is marked.
    assert orjson.loads(encode_event(plain, 7, "gw", synced=False))["time_synced"] is False
    assert "time_synced" not in orjson.loads(encode_event(device, 7, "gw", synced=False))
