"""``format: thingsboard``: ThingsBoard's gateway API, shaped as its reference shows it
(``v1/gateway/telemetry``: device -> [{"ts", "values"}]; ``v1/gateway/connect`` before a
device's data), then through a real Mosquitto standing in for ThingsBoard's broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import Subscriber, delivered, run_in_process, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.event import Event, new_event
from tidegate.payload import encode_event
from tidegate.uplink.formats import Format, FormatContext, FormatError, format_named

T = 1764162300.1259  # 2025-11-26T13:05:00.125900Z


def thingsboard() -> Format:
    return format_named("thingsboard", FormatContext("tidegate/farm-7/status"))


def stored(event: Event) -> bytes:
    return encode_event(event, 1, "farm-7")


@pytest.mark.parametrize(
    ("event", "values"),
    [
        (new_event("greenhouse", "temperature", 21.4, unit="°C", time=T), {"temperature": 21.4}),
        (new_event("door", "open", True, time=T), {"open": True}),
        (
            new_event("bme", "climate", {"t": 20.5, "rh": 41}, time=T),
            {"climate.t": 20.5, "climate.rh": 41},
        ),
        (new_event("modem", "status", "ok", time=T), {"status": "ok"}),
    ],
    ids=lambda v: v.name if isinstance(v, Event) else "",
)
def test_telemetry_is_the_gateway_apis_shape(event: Event, values: dict[str, Any]) -> None:
    fmt = thingsboard()
    assert fmt.topic("tidegate/farm-7/x/y", stored(event)) == "v1/gateway/telemetry"
    assert json.loads(fmt.event(stored(event))) == {
        f"farm-7/{event.source}": [{"ts": 1764162300125, "values": values}]  # ms, truncated
    }


def test_a_message_merges_its_events_device_by_device() -> None:
    fmt = thingsboard()
    a1, b, a2 = (
        fmt.event(stored(new_event(s, "x", v, time=T + v)))
        for s, v in (("a", 1), ("b", 2), ("a", 3))
    )
    assert json.loads(fmt.message([a1, b, a2], batched=True)) == {
        "farm-7/a": [
            {"ts": 1764162301125, "values": {"x": 1}},
            {"ts": 1764162303125, "values": {"x": 3}},
        ],
        "farm-7/b": [{"ts": 1764162302125, "values": {"x": 2}}],
    }


def test_devices_connect_before_their_data_and_again_on_every_connection() -> None:
    fmt = thingsboard()
    first = [
        (a.topic, json.loads(a.payload), a.retain)
        for a in fmt.announce(stored(new_event("greenhouse", "temperature", 21.4, unit="°C")), "t")
    ]
    assert first == [
        ("v1/gateway/connect", {"device": "farm-7/greenhouse", "type": "tidegate"}, False),
        ("v1/gateway/attributes", {"farm-7/greenhouse": {"unit.temperature": "°C"}}, False),
    ]
    assert fmt.announce(stored(new_event("greenhouse", "temperature", 22.0, unit="°C")), "t") == []
    assert [a.topic for a in fmt.announce(stored(new_event("greenhouse", "open", True)), "t")] == []
    assert len(fmt.reannounce()) == 2


def test_a_reading_without_a_value_cannot_be_sent() -> None:
    with pytest.raises(FormatError, match="no value"):
        thingsboard().event(stored(new_event("s", "x", float("nan"))))


def test_through_a_broker(tmp_path: Path, broker: LocalBroker) -> None:
    text = f"""
gateway: {{id: farm-7, data_dir: {tmp_path}}}
mqtt: {{host: {broker.host}, port: {broker.port}, format: thingsboard, events_per_message: 50}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: greenhouse
    type: sim
    signals: [{{name: temperature, kind: sine, rate: 2000, count: 200, unit: "°C"}}]
  - name: meter
    type: sim
    signals: [{{name: pulses, kind: counter, rate: 2000, count: 200}}]
"""
    sub = Subscriber(broker.host, broker.port, "v1/gateway/#").start()

    def points() -> int:
        return sum(
            len(items)
            for m in sub.snapshot()
            if m.topic == "v1/gateway/telemetry"
            for items in json.loads(m.payload).values()
        )

    run_in_process(text, delivered(400))
    wait_until(lambda: points() >= 400, 10, "400 points at the broker")
    sub.stop()
    got = sub.snapshot()
    assert {m.topic for m in got} == {
        "v1/gateway/connect",
        "v1/gateway/attributes",
        "v1/gateway/telemetry",
    }
    for device in ("farm-7/greenhouse", "farm-7/meter"):
        connect = next(
            i
            for i, m in enumerate(got)
            if m.topic == "v1/gateway/connect" and json.loads(m.payload)["device"] == device
        )
        data = next(
            i
            for i, m in enumerate(got)
            if m.topic == "v1/gateway/telemetry" and device in json.loads(m.payload)
        )
        assert connect < data, device
    pulses = sorted(
        item["values"]["pulses"]
        for m in got
        if m.topic == "v1/gateway/telemetry"
        for item in json.loads(m.payload).get("farm-7/meter", [])
    )
    assert pulses == list(range(len(pulses))) and len(pulses) == 200  # every count, once
