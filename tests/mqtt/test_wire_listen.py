"""The publishing client's ``listen``: one QoS 0 subscription on its own connection,
messages handed over (MQTT 3.1.1 and 5, QoS 0 and 1), a refusal recorded."""

from __future__ import annotations

import asyncio

import pytest

from tests.mqtt.support import (
    PROTOCOLS,
    Calls,
    FakeBroker,
    connack_of,
    connected,
    new_client,
    read_packet,
    run,
    until,
)
from tidegate.demo.local_broker import LocalBroker
from tidegate.mqtt.wire import packets
from tidegate.mqtt.wire.reasons import Reason

SUBSCRIBE, PUBACK = 8, 4


def incoming(topic: str, payload: bytes, qos: int, mid: int, *, v5: bool) -> bytes:
    """A PUBLISH as a broker sends it (MQTT 5: with a User Property to skip)."""
    props = b""
    if v5:
        prop = b"\x26" + packets.utf8("k") + packets.utf8("v")
        props = packets.varint(len(prop)) + prop
    body = packets.utf8(topic) + (mid.to_bytes(2, "big") if qos else b"") + props + payload
    return bytes([0x30 | qos << 1]) + packets.varint(len(body)) + body


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_listen_subscribes_and_hands_over_messages(protocol: str) -> None:
    v5 = protocol == "5"
    heard: list[tuple[str, bytes]] = []
    acked: list[int] = []

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)  # CONNECT
        writer.write(connack_of(protocol))
        kind, flags, body = await read_packet(reader)
        assert (kind, flags) == (SUBSCRIBE, 2)
        mid = int.from_bytes(body[:2], "big")
        at = 3 if v5 else 2  # MQTT 5: an empty properties length
        assert body[at:] == packets.utf8("ha/status") + b"\x00"  # QoS 0
        writer.write(
            b"\x90"
            + bytes([4 if v5 else 3])
            + mid.to_bytes(2, "big")
            + (b"\x00" if v5 else b"")
            + b"\x00"
        )
        writer.write(incoming("ha/status", b"online", 0, 0, v5=v5))
        writer.write(incoming("ha/status", b"offline", 1, 77, v5=v5))
        while True:
            kind, _, body = await read_packet(reader)
            if kind == PUBACK:
                acked.append(int.from_bytes(body[:2], "big"))

    async def main() -> None:
        async with FakeBroker(broker) as fake:
            client = new_client(protocol, Calls())
            await connected(client, fake.port)
            client.listen("ha/status", lambda topic, payload: heard.append((topic, payload)))
            await until(lambda: len(heard) == 2 and acked == [77], 5, "both messages, one PUBACK")
            assert client.listen_refused is None
            client.abort()

    run(main())
    assert heard == [("ha/status", b"online"), ("ha/status", b"offline")]


def test_a_refused_subscription_is_recorded() -> None:
    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)  # CONNECT
        writer.write(connack_of("5"))
        _, _, body = await read_packet(reader)
        # SUBACK: the packet id, no properties, 0x87 Not authorized.
        writer.write(b"\x90\x04" + body[:2] + b"\x00\x87")
        await reader.read()

    async def main() -> None:
        async with FakeBroker(broker) as fake:
            client = new_client("5", Calls())
            await connected(client, fake.port)
            refusals: list[Reason] = []
            client.listen("ha/status", lambda topic, payload: None, refusals.append)
            await until(lambda: not client.subscribing, 5, "the SUBACK")
            assert client.listen_refused is not None
            assert client.listen_refused.value == 0x87
            assert refusals == [client.listen_refused]
            client.abort()

    run(main())


def test_listen_hears_a_real_broker(broker: LocalBroker) -> None:
    heard: list[bytes] = []

    async def main() -> None:
        client = new_client("3.1.1", Calls())
        await connected(client, broker.port)
        client.listen("ha/status", lambda topic, payload: heard.append(payload))
        await until(lambda: not client.subscribing, 5, "the SUBACK")
        other = new_client("3.1.1", Calls(), client_id="ha")
        await connected(other, broker.port)
        other.publish("ha/status", b"online", 1, False)
        await until(lambda: heard == [b"online"], 5, "the birth message")
        other.disconnect()
        client.disconnect()

    run(main())
