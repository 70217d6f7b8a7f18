"""Message formats (``mqtt.format``), each read back by an implementation that is not
ours: the CloudEvents SDK for ``cloudevents``, ``line-protocol-parser`` (InfluxDB's
grammar, in C) for ``influx``; then through a real Mosquitto, and the send window's
handling of what a format cannot write."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import line_protocol_parser
import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka
from cloudevents.core.bindings.kafka import KafkaMessage
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from paho.mqtt.enums import MQTTProtocolVersion

from tests.support import Received, Subscriber, delivered, run_in_process, wait_until
from tidegate.config.loader import load_config_text
from tidegate.config.schema import FormatName, MqttSection
from tidegate.demo.local_broker import LocalBroker
from tidegate.errors import ConfigError
from tidegate.event import Event, new_event
from tidegate.outbox import Row
from tidegate.payload import encode_event
from tidegate.uplink.formats import FORMATS, Format, FormatContext, FormatError, format_named
from tidegate.uplink.window import SendWindow

T = 1796248043.032718  # 2026-12-02T21:47:23.032718Z
SHAPES = [
    new_event("greenhouse", "temperature", 21.5, unit="°C", time=T),
    new_event("meter", "pulses", 12, time=T),
    new_event("door", "open", True, tags={"room name": "hall, east", "a=b": "c"}, time=T),
    new_event("modem", "status", 'said "ok" \\ fine', time=T),
    new_event("bme", "climate", {"t": 20.25, "rh": 41, "ok": True}, time=T),
    Event("dev", "t", 1.0, T, "01a238b9-fe18-704d-9b7e-6878cc014de2", time_source="device"),
]


def written_as(name: str) -> Format:
    return format_named(name, FormatContext("tidegate/barn/status"))


def stored(event: Event, seq: int = 7, *, synced: bool = True) -> bytes:
    return encode_event(event, seq, "barn", synced=synced)


def test_every_schema_name_has_a_format() -> None:
    assert set(FORMATS) == set(get_args(FormatName))


@pytest.mark.parametrize("event", SHAPES, ids=lambda e: e.name)
def test_cloudevents_are_read_by_the_sdk(event: Event) -> None:
    payload = stored(event)
    ce = JSONFormat().read(CloudEvent, written_as("cloudevents").event(payload))
    assert ce.get_specversion() == "1.0"
    assert ce.get_id() == event.id
    assert ce.get_source() == f"/tidegate/barn/{event.source}"
    assert ce.get_type() == "io.tidegate.event"
    assert ce.get_subject() == event.name
    assert ce.get_time() == datetime.fromtimestamp(T, UTC)
    assert ce.get_datacontenttype() == "application/json"
    assert ce.get_data() == json.loads(payload)  # the stored event, unchanged


@pytest.mark.parametrize("event", SHAPES, ids=lambda e: e.name)
def test_influx_lines_are_read_by_a_line_protocol_parser(event: Event) -> None:
    line = written_as("influx").event(stored(event, synced=False)).decode()
    parsed = line_protocol_parser.parse_line(line)
    assert parsed["measurement"] == event.name
    tags = {"gateway": "barn", "source": event.source, **(event.tags or {})}
    if event.unit:
        tags["unit"] = event.unit
    assert parsed["tags"] == tags
    values = event.value if isinstance(event.value, dict) else {"value": event.value}
    expected: dict[str, Any] = {**values, "seq": 7}
    if event.time_source is None:
        expected["time_synced"] = False  # only the gateway's own clock can be unsynced
    assert parsed["fields"] == expected
    assert parsed["time"] == 1796248043032718000  # exact: no float on the way


def test_influx_writes_a_nan_as_no_value_and_refuses_newlines() -> None:
    line = written_as("influx").event(stored(new_event("s", "x", math.nan, time=T)))
    assert line_protocol_parser.parse_line(line.decode())["fields"] == {"seq": 7}
    for event in (
        new_event("s", "two\nlines", 1.0, time=T),
        new_event("s", "x", "a\nb", time=T),
        new_event("s", "x", 1.0, tags={"k": "v\r"}, time=T),
    ):
        with pytest.raises(FormatError, match="newline"):
            written_as("influx").event(stored(event))
    with pytest.raises(FormatError, match="not a JSON event"):
        written_as("influx").event(b"\xff not json")


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (new_event("s", "#note", 1.0, time=T), "comment"),
        (new_event("s", "x", 1.0, tags={"k": "tab\there"}, time=T), "control character"),
        (new_event("s", "x", 1.0, tags={"k": "ends\\"}, time=T), "backslash"),
        (new_event("s", "x", {"": 1}, time=T), "empty"),
        (new_event("s", "x", 1 << 63, time=T), "64 bits"),
        (new_event("s", "x", {"seq": 99, "a": 1}, time=T), "overwrite the event's seq"),
    ],
    ids=["comment", "tab", "trailing-backslash", "empty-key", "uint64", "seq-key"],
)
def test_influx_refuses_what_a_parser_would_reject_or_misread(event: Event, reason: str) -> None:
    # Telegraf drops a whole message at its first bad line: better one dead letter.
    with pytest.raises(FormatError, match=reason):
        written_as("influx").event(stored(event))


def test_influx_keeps_backslashes_and_the_largest_integers_as_they_are() -> None:
    event = new_event("s", "x", -(1 << 63), tags={"path": "C:\\temp\\a b"}, time=T)
    parsed = line_protocol_parser.parse_line(written_as("influx").event(stored(event)).decode())
    assert parsed["tags"]["path"] == "C:\\temp\\a b"
    assert parsed["fields"]["value"] == -(1 << 63)


def test_json_formats_keep_the_stored_bytes() -> None:
    payload = stored(SHAPES[0])
    plain, batch = written_as("json"), written_as("json_batch")
    assert plain.event(payload) is payload
    assert plain.message([payload], batched=False) == payload
    assert plain.message([payload], batched=True) == b"[" + payload + b"]"  # as before
    assert batch.message([payload], batched=False) == b"[" + payload + b"]"
    assert json.loads(batch.message([payload, payload], batched=True)) == [json.loads(payload)] * 2


def window(fmt: str, per_message: int = 1) -> SendWindow:
    return SendWindow(
        MqttSection.model_validate(
            {"host": "127.0.0.1", "format": fmt, "events_per_message": per_message}
        )
    )


def rows(payloads: list[bytes]) -> list[Row]:
    return [Row(i, "t", 1, False, p, 1) for i, p in enumerate(payloads, start=1)]


def test_the_window_refuses_what_the_format_cannot_write_once_it_is_packed() -> None:
    good = stored(SHAPES[0])
    bad = stored(new_event("s", "x", "a\nb", time=T))
    reason = (
        "cannot be written as influx: a newline in a text value cannot be written in line protocol"
    )
    win = window("influx")
    messages, refused = win.pack(rows([good, bad, good, bad, good]), room=2, max_bytes=1 << 20)
    # Two messages fit: rows 1 and 3. Rows 2 and 4 come before the first row left over
    # (5): refused now; the cursor stops before row 5, taken again next time.
    assert [m.ids for m in messages] == [[1], [3]]
    assert refused == [([2], reason), ([4], reason)]
    assert win.cursors[1] == 4
    # What the outbox counts is the stored size, not the line's.
    assert [m.size for m in messages] == [len(good), len(good)]
    assert messages[0].payloads[0].startswith(b"temperature,")

    win = window("influx")
    messages, refused = win.pack(rows([good, bad, good, good, bad]), room=2, max_bytes=1 << 20)
    assert [m.ids for m in messages] == [[1], [3]]
    assert refused == [([2], reason)]  # row 5 waits behind row 4: its turn has not come
    assert win.cursors[1] == 3


def test_the_size_limit_applies_to_what_the_format_writes() -> None:
    payload = stored(SHAPES[0])
    envelope = len(written_as("cloudevents").event(payload))
    limit = (len(payload) + envelope) // 2  # the stored event fits, its CloudEvent not
    messages, refused = window("cloudevents").pack(rows([payload]), room=5, max_bytes=limit)
    assert messages == []
    assert refused == [([1], f"larger than the broker's message limit ({limit} B)")]


SIM = """
gateway: {{id: fmt, data_dir: {data}}}
mqtt: {{host: {host}, port: {port}, protocol: "5", format: {fmt}, events_per_message: {per}}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: s1
    type: sim
    signals: [{{name: a, kind: counter, rate: 2000, count: 300}},
              {{name: b, kind: sine, rate: 2000, count: 300, unit: W}}]
"""


def run(
    tmp_path: Path, broker: LocalBroker, fmt: str, per: int, events_in: Callable[[bytes], int]
) -> list[Received]:
    """The messages a subscriber got once it has all 600 events (``events_in`` counts a
    message's)."""
    sub = Subscriber(
        broker.host, broker.port, "tidegate/fmt/s1/#", protocol=MQTTProtocolVersion.MQTTv5
    ).start()
    text = SIM.format(data=tmp_path, host=broker.host, port=broker.port, fmt=fmt, per=per)
    gateway = run_in_process(text, delivered(600))

    def got() -> int:
        return sum(events_in(m.payload) for m in sub.snapshot())

    wait_until(lambda: got() >= 600, 10, "600 events at the subscriber")
    sub.stop()
    assert gateway.outbox.stats.depth == 0
    assert gateway.outbox.stats.bytes == 0  # the stored sizes were subtracted, not the sent
    return sub.snapshot()


@pytest.mark.parametrize("per", [1, 50])
def test_cloudevents_through_a_broker(tmp_path: Path, broker: LocalBroker, per: int) -> None:
    messages = run(
        tmp_path, broker, "cloudevents", per, lambda p: 1 if per == 1 else len(json.loads(p))
    )
    events = []
    for msg in messages:
        if per == 1:
            assert msg.content_type == "application/cloudevents+json"
            events.append(JSONFormat().read(CloudEvent, msg.payload))
        else:
            assert msg.content_type == "application/cloudevents-batch+json"
            for item in json.loads(msg.payload):
                events.append(JSONFormat().read(CloudEvent, json.dumps(item)))
    assert len(events) == 600 == len({e.get_id() for e in events})
    assert {e.get_subject() for e in events} == {"a", "b"}
    assert sorted(data(e)["seq"] for e in events) == list(range(1, 601))  # one source


def data(event: BaseCloudEvent) -> dict[str, Any]:
    doc = event.get_data()
    assert isinstance(doc, dict)
    return doc


def test_influx_through_a_broker_in_batches(tmp_path: Path, broker: LocalBroker) -> None:
    messages = run(tmp_path, broker, "influx", 50, lambda p: p.count(b"\n") + 1)
    lines = [line for msg in messages for line in msg.payload.decode().split("\n")]
    assert all(msg.content_type is None for msg in messages)
    parsed = [line_protocol_parser.parse_line(line) for line in lines]
    assert len(parsed) == 600
    assert sorted(p["fields"]["seq"] for p in parsed) == list(range(1, 601))
    assert {p["measurement"] for p in parsed} == {"a", "b"}
    assert all(p["tags"]["unit"] == "W" for p in parsed if p["measurement"] == "b")


def test_cloudevents_binary_needs_mqtt_5_and_one_event_per_message() -> None:
    for extra in ('protocol: "3.1.1"', "events_per_message: 10"):
        with pytest.raises(ConfigError, match="cloudevents_binary needs protocol 5"):
            load_config_text(
                f"mqtt: {{host: h, format: cloudevents_binary, {extra}}}\n"
                "drivers: [{name: a, type: sim, signals: [{name: t, kind: sine, rate: 1}]}]"
            )


def test_cloudevents_binary_through_a_broker(tmp_path: Path, broker: LocalBroker) -> None:
    """Binary mode: the payload is the data, each attribute a User Property named after
    it, the Content Type the data's. Read back by the SDK's binary-mode decoder (its
    Kafka binding: the same mapping, with a ``ce_`` prefix on each header)."""
    messages = run(tmp_path, broker, "cloudevents_binary", 1, lambda p: 1)
    for msg in messages:
        assert msg.content_type == "application/json"
        assert len(dict(msg.user_properties)) == len(msg.user_properties) == 6  # each once
        headers = {f"ce_{k}": v.encode() for k, v in msg.user_properties}
        headers["content-type"] = msg.content_type.encode()
        event = kafka.from_binary(KafkaMessage(headers, None, msg.payload), JSONFormat())
        stored_event = json.loads(msg.payload)
        assert event.get_data() == stored_event
        assert event.get_id() == stored_event["id"]
        assert event.get_source() == "/tidegate/fmt/s1"
        assert event.get_subject() == stored_event["name"]
        assert event.get_time() == datetime.fromisoformat(stored_event["time"])
        assert event.get_type() == "io.tidegate.event" and event.get_specversion() == "1.0"
        assert event.get_datacontenttype() == "application/json"


def test_cloudevents_binary_refuses_what_cannot_be_a_cloudevent_when_packing() -> None:
    good = stored(SHAPES[0])
    win = SendWindow(
        MqttSection.model_validate({"host": "h", "format": "cloudevents_binary", "protocol": "5"})
    )
    messages, refused = win.pack(rows([good, b'{"source": "s"}', good]), room=5, max_bytes=1 << 20)
    assert [m.ids for m in messages] == [[1], [3]]
    assert [m.payloads for m in messages] == [[good], [good]]  # the data, as stored
    assert refused == [([2], "cannot be written as cloudevents_binary: the event has no 'id' text")]
