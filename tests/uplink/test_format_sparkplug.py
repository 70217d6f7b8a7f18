"""``format: sparkplug_b``: births, data by alias, deaths and the session's numbers, each
message read back with Eclipse Tahu's ``sparkplug_b``; then through a real Mosquitto:
the will's NDEATH when a link is cut, historical replays, rebirth on NCMD, the farewell."""

from __future__ import annotations

from typing import Any, cast

import pytest
from tahutils.tahu import sparkplug_b as tahu

from tidegate.config.loader import load_config_text
from tidegate.config.schema import MqttSection
from tidegate.errors import ConfigError
from tidegate.event import new_event
from tidegate.mqtt.wire import WireClient
from tidegate.outbox import Row
from tidegate.payload import encode_event
from tidegate.uplink.formats import FormatContext, FormatError, format_named
from tidegate.uplink.formats.sparkplug import SparkplugB
from tidegate.uplink.formats.sparkplug_payload import BOOLEAN, DOUBLE, INT64, STRING
from tidegate.uplink.window import SendWindow

T = 1764162300.125
T_MS = 1764162300125
NODE = "spBv1.0/plant/{}/farm-7"


def sparkplug(gateway: str = "farm-7", group: str = "plant") -> SparkplugB:
    fmt = format_named("sparkplug_b", FormatContext("s", gateway=gateway, sparkplug_group=group))
    assert isinstance(fmt, SparkplugB)
    return fmt


def stored(source: str, name: str, value: Any, t: float = T, unit: str | None = None) -> bytes:
    return encode_event(new_event(source, name, value, time=t, unit=unit), 1, "farm-7")


def sent(fmt: SparkplugB, topic: str, payload: bytes) -> Any:
    """What a host reads of the message as it goes out."""
    return tahu.Payload.FromString(fmt.sequence(topic, payload))


def by_name(payload: Any) -> dict[str, Any]:
    return {m.name: m for m in payload.metrics}


def test_nbirth_says_bd_seq_and_rebirth_and_the_will_the_same_bd_seq() -> None:
    fmt = sparkplug()
    will = fmt.will()
    assert will is not None and not will.retain
    assert will.topic == NODE.format("NDEATH")
    death = tahu.Payload.FromString(will.payload)
    assert not death.HasField("seq") and death.timestamp > 0
    assert [(m.name, m.datatype, m.long_value) for m in death.metrics] == [("bdSeq", INT64, 0)]
    [nbirth] = fmt.reannounce()
    assert (nbirth.topic, nbirth.retain) == (NODE.format("NBIRTH"), False)
    birth = sent(fmt, nbirth.topic, nbirth.payload)
    assert birth.seq == 0 and birth.timestamp > 0
    metrics = by_name(birth)
    assert (metrics["bdSeq"].datatype, metrics["bdSeq"].long_value) == (INT64, 0)
    rebirth = metrics["Node Control/Rebirth"]
    assert (rebirth.datatype, rebirth.boolean_value) == (BOOLEAN, False)


def test_bd_seq_grows_with_each_connection_and_wraps() -> None:
    fmt = sparkplug()
    seen = []
    for _ in range(258):
        will = fmt.will()
        assert will is not None
        seen.append(tahu.Payload.FromString(will.payload).metrics[0].long_value)
        [nbirth] = fmt.reannounce()
        assert by_name(sent(fmt, nbirth.topic, nbirth.payload))["bdSeq"].long_value == seen[-1]
    assert seen == [*range(256), 0, 1]


def test_dbirth_declares_every_metric_and_ddata_sends_them_by_alias() -> None:
    fmt = sparkplug()
    event = stored("green/house#1", "climate", {"t": 21, "ok": True, "mode": "auto"}, unit="°C")
    [dbirth] = fmt.announce(event, "routed/topic")
    assert dbirth.topic == NODE.format("DBIRTH") + "/green_house_1"  # a topic level, sanitised
    birth = by_name(sent(fmt, dbirth.topic, dbirth.payload))
    assert {n: (m.datatype, m.timestamp) for n, m in birth.items()} == {
        "climate/t": (INT64, T_MS),
        "climate/ok": (BOOLEAN, T_MS),
        "climate/mode": (STRING, T_MS),
    }
    assert (birth["climate/t"].long_value, birth["climate/mode"].string_value) == (21, "auto")
    assert list(birth["climate/t"].properties.keys) == ["engUnit"]
    assert not birth["climate/ok"].HasField("properties")  # a unit is for numbers
    aliases = {m.alias for m in birth.values()}
    assert len(aliases) == 3

    assert fmt.announce(event, "routed/topic") == []  # born already
    topic = fmt.topic("routed/topic", event)
    assert topic == NODE.format("DDATA") + "/green_house_1"
    data = sent(fmt, topic, fmt.message([fmt.event(event)], batched=False))
    assert data.seq == 2  # NBIRTH would be 0; the DBIRTH took 1
    for m in data.metrics:
        assert not m.HasField("name") and not m.HasField("datatype") and not m.is_historical
        assert m.timestamp == T_MS and m.alias in aliases
    assert {m.alias: m.WhichOneof("value") for m in data.metrics} == {
        birth["climate/t"].alias: "long_value",
        birth["climate/ok"].alias: "boolean_value",
        birth["climate/mode"].alias: "string_value",
    }


def test_a_new_or_retyped_metric_brings_the_devices_birth_again() -> None:
    fmt = sparkplug()
    assert len(fmt.announce(stored("m", "count", 3), "t")) == 1
    assert fmt.announce(stored("m", "count", 4, T + 1), "t") == []
    # An integer metric that reads a fraction becomes a Double: a new DBIRTH says so.
    [again] = fmt.announce(stored("m", "count", 4.5, T + 2), "t")
    count = by_name(sent(fmt, again.topic, again.payload))["count"]
    assert (count.datatype, count.double_value, count.timestamp) == (DOUBLE, 4.5, T_MS + 2000)
    # A Double metric takes integers as they are (written as doubles), and nulls.
    assert fmt.announce(stored("m", "count", 5, T + 3), "t") == []
    [five] = sent(fmt, "x", fmt.event(stored("m", "count", 5, T + 3))).metrics
    assert five.WhichOneof("value") == "double_value" and five.double_value == 5.0
    assert fmt.announce(stored("m", "count", float("nan"), T + 4), "t") == []
    [null] = sent(fmt, "x", fmt.event(stored("m", "count", float("nan"), T + 4))).metrics
    assert null.is_null
    [grown] = fmt.announce(stored("m", "other", "x"), "t")
    assert set(by_name(sent(fmt, grown.topic, grown.payload))) == {"count", "other"}
    assert [a.topic for a in fmt.reannounce()] == [
        NODE.format("NBIRTH"),
        NODE.format("DBIRTH") + "/m",
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [(1 << 63, "does not fit an Int64"), ([1, 2], "no Sparkplug datatype"), ({}, "no value")],
)
def test_what_sparkplug_cannot_carry_is_refused(value: Any, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        sparkplug().announce(stored("s", "x", value), "t")


def test_seq_counts_every_message_but_ndeath_and_wraps() -> None:
    fmt = sparkplug()
    ddata = NODE.format("DDATA") + "/d"
    seqs = [sent(fmt, ddata, b"").seq for _ in range(300)]
    assert seqs == [*range(1, 256), *range(0, 45)]
    assert sent(fmt, NODE.format("NBIRTH"), b"").seq == 0  # a (re)birth starts again
    assert sent(fmt, NODE.format("DBIRTH") + "/d", b"").seq == 1
    assert not sent(fmt, NODE.format("NDEATH"), b"").HasField("seq")
    assert sent(fmt, ddata, b"").seq == 2


def test_the_farewell_is_a_ddeath_per_device_then_ndeath() -> None:
    fmt = sparkplug()
    fmt.will()
    fmt.will()  # the second connection: bdSeq 1
    for source in ("a", "b"):
        fmt.announce(stored(source, "x", 1), "t")
    deaths = fmt.farewell()
    assert [d.topic for d in deaths] == [
        NODE.format("DDEATH") + "/a",
        NODE.format("DDEATH") + "/b",
        NODE.format("NDEATH"),
    ]
    assert all(not d.retain for d in deaths)
    assert not sent(fmt, deaths[0].topic, deaths[0].payload).metrics
    assert by_name(sent(fmt, deaths[2].topic, deaths[2].payload))["bdSeq"].long_value == 1


def test_ncmd_rebirth_is_heard() -> None:
    fmt = sparkplug()
    assert fmt.listens() == [NODE.format("NCMD")]

    def ncmd(value: bool) -> bytes:
        payload = tahu.Payload()
        tahu.addMetric(payload, "Node Control/Rebirth", None, tahu.MetricDataType.Boolean, value)
        return bytes(payload.SerializeToString())

    topic = NODE.format("NCMD")
    assert fmt.heard(topic, ncmd(True))
    assert not fmt.heard(topic, ncmd(False))
    assert not fmt.heard(topic, b"\xff\xff")  # not a payload at all


def test_the_window_sends_one_ddata_per_device_and_marks_replays() -> None:
    mqtt = MqttSection.model_validate(
        {"host": "h", "format": "sparkplug_b", "events_per_message": 10, "sparkplug_group": "g"}
    )
    window = SendWindow(mqtt, "s", gateway="farm-7")
    window.format.will()
    window.connected(100, live_from=3)  # rows 1 and 2 were accepted before this connection
    [nbirth] = window.announcements
    window.announcements = []
    rows = [
        Row(i, "tidegate/farm-7/x", 1, False, stored(src, "v", i, T + i), 1)
        for i, src in enumerate(["a", "b", "a", "a"], start=1)
    ]
    messages, refused = window.pack(rows, room=5, max_bytes=1 << 20)
    assert not refused
    assert [(m.topic, m.ids) for m in messages] == [
        ("spBv1.0/g/DDATA/farm-7/a", [1, 3, 4]),
        ("spBv1.0/g/DDATA/farm-7/b", [2]),
    ]
    assert [a.topic for a in window.announcements] == [
        "spBv1.0/g/DBIRTH/farm-7/a",
        "spBv1.0/g/DBIRTH/farm-7/b",
    ]
    a = tahu.Payload.FromString(window.format.message(messages[0].payloads, batched=True))
    assert [(m.long_value, m.is_historical) for m in a.metrics] == [
        (1, True),
        (3, False),
        (4, False),
    ]
    assert nbirth.topic == "spBv1.0/g/NBIRTH/farm-7"


class Recorder:
    """Stands in for the connection: what the window hands it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        self.sent.append((topic, payload, qos, retain))
        return len(self.sent)


def test_a_device_met_with_several_metrics_at_once_is_born_once() -> None:
    window = SendWindow(MqttSection.model_validate({"host": "h", "format": "sparkplug_b"}))
    window.connected(100)
    rows = [
        Row(i, "t", 1, False, stored("greenhouse", name, 1.5), 1)
        for i, name in enumerate(["temperature", "humidity", "co2"], start=1)
    ]
    window.pack(rows, room=5, max_bytes=1 << 20)
    client = Recorder()
    window.announce(cast(WireClient, client))
    assert [(topic.split("/")[2], qos, retain) for topic, _, qos, retain in client.sent] == [
        ("NBIRTH", 0, False),
        ("DBIRTH", 0, False),  # the last, which declares all three
    ]
    dbirth = tahu.Payload.FromString(client.sent[1][1])
    assert [m.name for m in dbirth.metrics] == ["temperature", "humidity", "co2"]
    assert dbirth.seq == 1


@pytest.mark.parametrize("group", ["a/b", "plant+", "#"])
def test_the_group_is_one_topic_level(group: str) -> None:
    with pytest.raises(ConfigError, match="sparkplug_group is one topic level"):
        load_config_text(
            f"mqtt: {{host: h, format: sparkplug_b, sparkplug_group: '{group}'}}\n"
            "drivers: [{name: a, type: sim, signals: [{name: t, kind: sine, rate: 1}]}]"
        )


def test_batches_are_allowed() -> None:
    config = load_config_text(
        "mqtt: {host: h, format: sparkplug_b, events_per_message: 100}\n"
        "drivers: [{name: a, type: sim, signals: [{name: t, kind: sine, rate: 1}]}]"
    )
    assert config.mqtt is not None and config.mqtt.sparkplug_group == "tidegate"
