"""MQTT 5 topic aliases and publish properties: the bytes a scripted broker receives
(read here by hand, per the specification's layout), then a real Mosquitto resolving
the aliases for its subscribers."""

from __future__ import annotations

import asyncio

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from tests.mqtt.support import Calls, FakeBroker, connected, new_client, read_packet, run, until
from tests.support import Subscriber, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.mqtt.wire import packets

PUBLISH, CONNECT = 3, 1


def connack_with_aliases(maximum: int) -> bytes:
    props = bytes([0x22]) + maximum.to_bytes(2, "big")  # Topic Alias Maximum
    body = b"\x00\x00" + bytes([len(props)]) + props
    return b"\x20" + bytes([len(body)]) + body


def parse_publish(body: bytes, *, v5: bool) -> tuple[str, dict[int, bytes], bytes]:
    """Topic, properties (id -> raw value) and payload of a QoS 1 PUBLISH body."""
    size = int.from_bytes(body[:2], "big")
    topic = body[2 : 2 + size].decode()
    at = 2 + size + 2  # the packet id
    props: dict[int, bytes] = {}
    if v5:
        length = body[at]  # short here: one byte of length
        at += 1
        end = at + length
        while at < end:
            key = body[at]
            if key == 0x23:  # Topic Alias: two bytes
                props[key], at = body[at + 1 : at + 3], at + 3
            elif key == 0x03:  # Content Type: a UTF-8 string
                n = int.from_bytes(body[at + 1 : at + 3], "big")
                props[key], at = body[at + 3 : at + 3 + n], at + 3 + n
            else:
                raise AssertionError(f"unexpected property {key:#x}")
    return topic, props, body[at:]


def sent_publishes(
    protocol: str, aliases: bool, maximum: int
) -> list[tuple[str, dict[int, bytes], bytes]]:
    got: list[tuple[str, dict[int, bytes], bytes]] = []

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        kind, _, _ = await read_packet(reader)
        assert kind == CONNECT
        writer.write(connack_with_aliases(maximum) if protocol == "5" else b"\x20\x02\x00\x00")
        while True:
            kind, _, body = await read_packet(reader)
            if kind == PUBLISH:
                got.append(parse_publish(body, v5=protocol == "5"))

    async def main() -> None:
        calls = Calls()
        async with FakeBroker(broker) as fake:
            client = new_client(protocol, calls, topic_aliases=aliases)
            await connected(client, fake.port)
            client.publish("status", b"online", 1, True)  # retained: no alias spent on it
            typed = packets.content_type("application/cloudevents+json")
            for n, topic in enumerate(["a/1", "a/2", "a/1", "a/3", "a/2", "a/3"]):
                client.publish(topic, f"m{n}".encode(), 1, False, typed)
            await until(lambda: len(got) == 7, 5, "seven PUBLISH packets")
            assert got.pop(0) == ("status", {}, b"online")
            client.abort()

    run(main())
    return got


def test_the_first_topics_get_aliases_as_many_as_the_broker_takes() -> None:
    got = sent_publishes("5", aliases=True, maximum=2)
    ct = b"application/cloudevents+json"
    one, two = (1).to_bytes(2, "big"), (2).to_bytes(2, "big")
    assert got == [
        ("a/1", {0x03: ct, 0x23: one}, b"m0"),  # named once, with its alias
        ("a/2", {0x03: ct, 0x23: two}, b"m1"),
        ("", {0x03: ct, 0x23: one}, b"m2"),  # then by the alias alone
        ("a/3", {0x03: ct}, b"m3"),  # the broker takes two: the third keeps its name
        ("", {0x03: ct, 0x23: two}, b"m4"),
        ("a/3", {0x03: ct}, b"m5"),
    ]


@pytest.mark.parametrize(("protocol", "aliases"), [("5", False), ("3.1.1", True)])
def test_no_aliases_when_turned_off_or_on_mqtt_3(protocol: str, aliases: bool) -> None:
    got = sent_publishes(protocol, aliases=aliases, maximum=10)
    assert [topic for topic, _, _ in got] == ["a/1", "a/2", "a/1", "a/3", "a/2", "a/3"]
    assert all(0x23 not in props for _, props, _ in got)
    # MQTT 3.1.1 has no properties at all: the payload follows the packet id.
    assert [payload for _, _, payload in got] == [f"m{n}".encode() for n in range(6)]


def test_mosquitto_resolves_the_aliases_for_its_subscribers(broker: LocalBroker) -> None:
    sub = Subscriber(broker.host, broker.port, "alias/#", MQTTProtocolVersion.MQTTv5).start()
    topics = [f"alias/t{n % 15}" for n in range(45)]  # more topics than Mosquitto's 10

    async def main() -> None:
        calls = Calls()
        client = new_client("5", calls, topic_aliases=True)
        await connected(client, broker.port)
        assert client.topic_alias_maximum == 10  # Mosquitto's default max_topic_alias
        typed = packets.content_type("text/plain")
        for n, topic in enumerate(topics):
            client.publish(topic, f"{n}".encode(), 1, False, typed)
        await until(lambda: len(calls.published) == len(topics), 5, "every PUBACK")
        assert all(not reason.is_failure for _, reason in calls.published)
        client.disconnect()
        await until(lambda: bool(calls.disconnects), 5, "the end of the connection")

    run(main())
    wait_until(lambda: len(sub.snapshot()) == len(topics), 5, "every message at the subscriber")
    sub.stop()
    got = sorted(sub.snapshot(), key=lambda m: int(m.payload))
    assert [m.topic for m in got] == topics
    assert {m.content_type for m in got} == {"text/plain"}
