"""The wire client publishing to a real Mosquitto (and a scripted fake broker for
what Mosquitto will not do): message ids, QoS 0 and 1, acknowledgements, topics."""

from __future__ import annotations

import asyncio

import pytest

from tests.mqtt.support import (
    DISCONNECTED,
    PROTOCOLS,
    Calls,
    FakeBroker,
    by_topic,
    connack_of,
    connected,
    new_client,
    read_packet,
    run,
    until,
)
from tests.support import Subscriber, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.mqtt.wire import packets
from tidegate.mqtt.wire.reasons import SUCCESS

# -- publishing ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_published_messages_are_reported_and_arrive_exactly(
    broker: LocalBroker, protocol: str
) -> None:
    # Payload sizes put the remaining length on both sides of 127 and 16,383.
    sent = [
        ("wire/p/empty", b"", 0, False),
        ("wire/p/ü-topic", bytes(range(256)), 1, False),
        ("wire/p/r0", b"retained at QoS 0", 0, True),
        ("wire/p/120", b"x" * 120, 1, False),
        ("wire/p/121", b"y" * 121, 0, False),
        ("wire/p/16380", b"z" * 16380, 1, True),
        ("wire/p/big", bytes(i % 253 for i in range(200_000)), 1, False),
    ]
    live = Subscriber(broker.host, broker.port, "wire/p/#").start()
    calls = Calls()

    async def main() -> None:
        client = new_client(protocol, calls)
        await connected(client, broker.port)
        mids = [client.publish(*message) for message in sent]
        assert min(mids) > 0 and len(set(mids)) == len(mids)
        assert calls.published == []  # queued: written at the end of this turn
        await until(lambda: len(calls.published) == len(sent), 5, "every message reported")
        assert sorted(calls.published) == sorted((mid, SUCCESS) for mid in mids)
        await asyncio.to_thread(
            wait_until, lambda: len(live.snapshot()) == len(sent), 5, "every message received"
        )
        client.disconnect()
        await until(lambda: bool(calls.disconnects), 5, "the end of the connection")

    try:
        run(main())
    finally:
        live.stop()
    assert calls.disconnects == [DISCONNECTED]
    # Live, an MQTT 3.1.1 subscription gets the retain flag cleared; who subscribes
    # later gets the retained messages with it set.
    assert by_topic(live.snapshot()) == {t: (p, False, q) for t, p, q, _ in sent}
    late = Subscriber(broker.host, broker.port, "wire/p/#").start()
    try:
        wait_until(lambda: len(late.snapshot()) == 2, 5, "the retained messages")
    finally:
        late.stop()
    assert by_topic(late.snapshot()) == {t: (p, True, q) for t, p, q, r in sent if r}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_twenty_thousand_messages_in_one_turn_are_all_acknowledged(
    broker: LocalBroker, protocol: str
) -> None:
    count = 20_000
    calls = Calls()
    live = Subscriber(broker.host, broker.port, "wire/many").start()

    async def main() -> None:
        client = new_client(protocol, calls)
        await connected(client, broker.port)
        mids = [client.publish("wire/many", b"%d" % i, 1, False) for i in range(count)]
        assert min(mids) > 0 and len(set(mids)) == count
        await until(lambda: len(calls.published) == count, 10, f"{count} acknowledgements")
        assert sorted(calls.published) == sorted((mid, SUCCESS) for mid in mids)
        assert calls.disconnects == []
        await asyncio.to_thread(
            wait_until, lambda: len(live.snapshot()) == count, 10, "every message received"
        )
        client.disconnect()

    try:
        run(main())
    finally:
        live.stop()
    assert [m.payload for m in live.snapshot()] == [b"%d" % i for i in range(count)]


def test_message_ids_run_out_at_65535_unacknowledged_and_skip_those_in_flight() -> None:
    acks: asyncio.Queue[int] = asyncio.Queue()

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(b"\x20\x02\x00\x00")

        async def drain() -> None:
            while await reader.read(1 << 16):
                pass

        draining = asyncio.ensure_future(drain())
        try:
            while True:
                writer.write(packets.puback(await acks.get()))
        finally:
            draining.cancel()

    calls = Calls()

    async def main() -> None:
        async with FakeBroker(broker) as fake:
            client = new_client("3.1.1", calls)
            await connected(client, fake.port)
            mids = [client.publish("t", b"", 1, False) for _ in range(0xFFFF)]
            assert sorted(mids) == list(range(1, 0x10000))
            assert client.publish("t", b"", 1, False) == -1
            assert client.publish("t", b"", 0, False) == -1
            for mid in (7, 3):
                acks.put_nowait(mid)
                await until(lambda: len(calls.published) == 1, 5, f"the ack of {mid}")
                # The next free id after the last one given, wrapping past 65,535.
                assert calls.published.pop() == (mid, SUCCESS)
                assert client.publish("t", b"", 1, False) == mid
            client.abort()

    run(main())


def test_qos0_is_reported_once_written_and_qos1_only_once_acknowledged() -> None:
    received: list[tuple[int, int, bytes]] = []
    ack_now = asyncio.Event()

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of("5"))
        while len(received) < 2:
            received.append(await read_packet(reader))
        await ack_now.wait()
        writer.write(b"\x40\x02" + received[1][2][8:10])  # the QoS-1 one's packet id
        await reader.read()

    calls = Calls()

    async def main() -> None:
        async with FakeBroker(broker) as fake:
            client = new_client("5", calls)
            await connected(client, fake.port)
            zero = client.publish("wire/0", b"zero", 0, False)
            one = client.publish("wire/1", b"one", 1, False)
            await until(lambda: len(received) == 2, 5, "both messages at the broker")
            assert calls.published == [(zero, SUCCESS)]  # the broker said nothing yet
            ack_now.set()
            await until(lambda: len(calls.published) == 2, 5, "the QoS-1 ack")
            assert calls.published[1] == (one, SUCCESS)
            client.abort()

    run(main())
    assert received == [
        (packets.PUBLISH, 0, b"\x00\x06wire/0\x00zero"),
        (packets.PUBLISH, 2, b"\x00\x06wire/1" + received[1][2][8:10] + b"\x00one"),
    ]


def test_nothing_is_published_before_connect_or_after_disconnect(broker: LocalBroker) -> None:
    calls = Calls()

    async def main() -> None:
        client = new_client("5", calls)
        assert client.publish("wire/x", b"", 1, False) == -1
        await connected(client, broker.port)
        client.disconnect()
        # Sent after the DISCONNECT, it would be dropped unsent (a QoS-0 one reported
        # as written): refused instead.
        assert client.publish("wire/x", b"late", 0, False) == -1
        assert client.publish("wire/x", b"late", 1, False) == -1
        await until(lambda: bool(calls.disconnects), 5, "the end of the connection")
        assert client.publish("wire/x", b"", 1, False) == -1

    run(main())
    assert calls.published == [] and calls.disconnects == [DISCONNECTED]


def test_more_topics_than_the_client_keeps_encoded(broker: LocalBroker) -> None:
    count = 5000  # over MAX_TOPICS: the kept topic names are dropped and made anew
    calls = Calls()
    live = Subscriber(broker.host, broker.port, "wire/topics/#").start()

    async def main() -> None:
        client = new_client("3.1.1", calls)
        await connected(client, broker.port)
        for i in range(count):
            client.publish(f"wire/topics/{i}", b"%d" % i, 1, False)
        await until(lambda: len(calls.published) == count, 10, "every ack")
        await asyncio.to_thread(
            wait_until, lambda: len(live.snapshot()) == count, 10, "every message"
        )
        client.disconnect()

    try:
        run(main())
    finally:
        live.stop()
    assert {m.topic: m.payload for m in live.snapshot()} == {
        f"wire/topics/{i}": b"%d" % i for i in range(count)
    }


# -- the broker's messages to us --------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_qos1_message_from_the_broker_is_acknowledged(protocol: str) -> None:
    got: list[tuple[int, int, bytes]] = []

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of(protocol))
        props = b"\x00" if protocol == "5" else b""
        body = b"\x00\x03a/b\x12\x34" + props + b"hello"
        writer.write(b"\x32" + bytes([len(body)]) + body)
        got.append(await read_packet(reader))
        await reader.read()

    async def main() -> None:
        async with FakeBroker(broker) as fake:
            client = new_client(protocol, Calls())
            await connected(client, fake.port)
            await until(lambda: bool(got), 5, "the client's PUBACK")
            client.abort()

    run(main())
    assert got == [(packets.PUBACK, 0, b"\x12\x34")]
