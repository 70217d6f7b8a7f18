"""``format: sparkplug_b`` through a real Mosquitto, every message read back with Eclipse
Tahu's ``sparkplug_b``: a link cut mid-session leaves the will's NDEATH with that
connection's bdSeq and the backlog goes as history after the next NBIRTH; an NCMD
rebirth brings the births again; a clean stop says DDEATH and NDEATH; seq wraps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from tahutils.tahu import sparkplug_b as tahu

from tests.mqtt.support import run, until
from tests.support import Received, Subscriber, run_in_process, wait_until
from tests.uplink.flaky_link import FlakyLink
from tests.uplink.test_publisher_wire_edges import finish, publisher
from tidegate.demo.local_broker import LocalBroker
from tidegate.event import new_event
from tidegate.outgoing import Outgoing

T = 1764162300.0
NODE = "spBv1.0/plant/{}/gw"
SPARKPLUG = {"format": "sparkplug_b", "sparkplug_group": "plant"}


def events(values: range, sources: tuple[str, ...] = ("a", "b")) -> list[Outgoing]:
    """Readings ``v`` of each source, the value i at time T + i."""
    return [
        Outgoing(new_event(s, "v", i, time=T + i), "ignored/by/the/format", 1, False)
        for i in values
        for s in sources
    ]


def kind(msg: Received) -> str:
    return msg.topic.split("/")[2]


def read(msg: Received) -> Any:
    return tahu.Payload.FromString(msg.payload)


def metric(msg: Received, name: str) -> Any:
    return next(m for m in read(msg).metrics if m.name == name)


def data_by_device(messages: list[Received]) -> dict[str, list[tuple[int, int, bool]]]:
    """Per device, (value, timestamp, is_historical) of each DDATA metric, its alias
    resolved by the device's latest DBIRTH before it."""
    names: dict[str, dict[int, str]] = {}
    out: dict[str, list[tuple[int, int, bool]]] = {}
    for msg in messages:
        device = msg.topic.split("/")[-1]
        if kind(msg) == "DBIRTH":
            names[device] = {m.alias: m.name for m in read(msg).metrics}
        elif kind(msg) == "DDATA":
            for m in read(msg).metrics:
                assert names[device][m.alias] == "v", "DDATA before its DBIRTH"
                out.setdefault(device, []).append((m.long_value, m.timestamp, m.is_historical))
    return out


def assert_seq_counts_on(session: list[Received]) -> None:
    """From an NBIRTH (seq 0), every message but NDEATH one more, modulo 256."""
    assert kind(session[0]) == "NBIRTH"
    seqs = [read(m).seq for m in session if kind(m) != "NDEATH"]
    assert seqs == [i % 256 for i in range(len(seqs))]


def test_a_cut_link_leaves_an_ndeath_and_the_backlog_goes_as_history(
    tmp_path: Path, broker: LocalBroker
) -> None:
    sub = Subscriber(broker.host, broker.port, "spBv1.0/#").start()
    # The first connection dies at its first DDATA, unsaid: no DISCONNECT reaches the broker.
    link = FlakyLink(broker.host, broker.port, drops=1, watch=lambda t: "/DDATA/" in t).start()

    async def main() -> None:
        pub, outbox = await publisher(tmp_path, link.port, **SPARKPLUG)
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.status.connected, 5, "the first connection")
        await outbox.call(outbox.outbox.put, events(range(10)))
        pub.wake()
        await until(lambda: pub.status.events_delivered == 20, 10, "the backlog delivered")
        assert pub.status.connects == 2 and link.dropped == 1
        await outbox.call(outbox.outbox.put, events(range(10, 15)))  # on the new connection
        pub.wake()
        await until(lambda: pub.status.events_delivered == 30, 10, "the live events delivered")
        await finish(pub, task, outbox)

    try:
        run(main())
    finally:
        link.stop()
    wait_until(lambda: len([m for m in sub.snapshot() if kind(m) == "NDEATH"]) == 2, 10, "NDEATHs")
    sub.stop()
    got = sub.snapshot()
    births = [m for m in got if kind(m) == "NBIRTH"]
    deaths = [m for m in got if kind(m) == "NDEATH"]
    assert [metric(m, "bdSeq").long_value for m in births] == [0, 1]
    # The will: the dead connection's bdSeq, unretained, said by the broker.
    assert [metric(m, "bdSeq").long_value for m in deaths] == [0, 1]
    assert not any(m.retain for m in got)
    second = got[got.index(births[1]) :]
    assert_seq_counts_on(second)
    # A clean stop: a DDEATH per device, then NDEATH, last.
    assert [m.topic for m in got[-3:]] == [
        NODE.format("DDEATH") + "/a",
        NODE.format("DDEATH") + "/b",
        NODE.format("NDEATH"),
    ]
    data = data_by_device(second)
    for device in ("a", "b"):
        assert data[device] == [
            (i, round((T + i) * 1000), i < 10)  # accepted before the connection: history
            for i in range(15)
        ]


def test_an_ncmd_rebirth_brings_the_births_again(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.host, broker.port, "spBv1.0/#").start()
    host = paho.Client(CallbackAPIVersion.VERSION2, client_id="scada-host")
    host.connect(broker.host, broker.port)
    host.loop_start()

    def ncmd(value: bool) -> None:
        payload = tahu.Payload()
        tahu.addMetric(payload, "Node Control/Rebirth", None, tahu.MetricDataType.Boolean, value)
        host.publish(NODE.format("NCMD"), payload.SerializeToString(), qos=1).wait_for_publish(5)

    def count(what: str) -> int:
        return len([m for m in sub.snapshot() if kind(m) == what])

    async def main() -> None:
        pub, outbox = await publisher(tmp_path, broker.port, **SPARKPLUG)
        task = asyncio.create_task(pub.run())
        await outbox.call(outbox.outbox.put, events(range(3), ("a",)))
        pub.wake()
        await until(lambda: count("DDATA") == 3, 10, "the first data")
        await asyncio.to_thread(ncmd, False)  # not a rebirth
        await asyncio.to_thread(ncmd, True)
        await until(lambda: count("NBIRTH") == 2 and count("DBIRTH") == 2, 10, "a rebirth")
        await outbox.call(outbox.outbox.put, events(range(3, 4), ("a",)))
        pub.wake()
        await until(lambda: count("DDATA") == 4, 10, "data after the rebirth")
        assert pub.status.connects == 1  # heard on the same connection, not a reconnect
        await finish(pub, task, outbox)

    try:
        run(main())
    finally:
        host.disconnect()
        host.loop_stop()
    wait_until(lambda: count("NDEATH") == 1, 10, "the NDEATH")
    sub.stop()
    got = sub.snapshot()
    births = [m for m in got if kind(m) == "NBIRTH"]
    assert [metric(m, "bdSeq").long_value for m in births] == [0, 0]  # the same session
    rebirth = got[got.index(births[1]) :]
    assert [kind(m) for m in rebirth] == ["NBIRTH", "DBIRTH", "DDATA", "DDEATH", "NDEATH"]
    assert_seq_counts_on(rebirth)
    assert metric(rebirth[1], "v").long_value == 2  # the latest value at the rebirth


def test_a_gateway_numbers_every_message_and_says_goodbye(
    tmp_path: Path, broker: LocalBroker
) -> None:
    text = f"""
gateway: {{id: farm-7, data_dir: {tmp_path}}}
mqtt: {{host: {broker.host}, port: {broker.port}, format: sparkplug_b}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: meter
    type: sim
    signals: [{{name: pulses, kind: counter, rate: 2000, count: 150, unit: "L"}}]
  - name: tank
    type: sim
    signals: [{{name: level, kind: counter, rate: 2000, count: 150}}]
"""
    sub = Subscriber(broker.host, broker.port, "spBv1.0/tidegate/#").start()

    def delivered_and_said(gateway: Any) -> bool:
        return bool(gateway.publisher.status.events_delivered >= 300)

    run_in_process(text, delivered_and_said)
    wait_until(lambda: any(kind(m) == "NDEATH" for m in sub.snapshot()), 10, "the NDEATH")
    sub.stop()
    got = sub.snapshot()
    assert got[0].topic == "spBv1.0/tidegate/NBIRTH/farm-7"
    assert_seq_counts_on(got)  # over 300 messages: seq wraps at 255
    assert len(got) > 300
    values: dict[str, list[int]] = {}
    names: dict[str, dict[int, str]] = {}
    for msg in got:
        device = msg.topic.split("/")[-1]
        if kind(msg) == "DBIRTH":
            names[device] = {m.alias: m.name for m in read(msg).metrics}
        elif kind(msg) == "DDATA":
            for m in read(msg).metrics:
                assert names[device][m.alias] in ("pulses", "level")
                values.setdefault(device, []).append(m.long_value)
    assert values == {"meter": list(range(150)), "tank": list(range(150))}
    assert {m.topic for m in got[-3:-1]} == {  # the devices in the order they came
        "spBv1.0/tidegate/DDEATH/farm-7/meter",
        "spBv1.0/tidegate/DDEATH/farm-7/tank",
    }
    assert got[-1].topic == "spBv1.0/tidegate/NDEATH/farm-7"
    assert metric(got[-1], "bdSeq").long_value == metric(got[0], "bdSeq").long_value == 0
