"""What the broker refuses or breaks: its limits and reason codes (real Mosquitto),
its DISCONNECT and garbage after the CONNACK (a scripted fake broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt.support import (
    PROTOCOLS,
    Calls,
    FakeBroker,
    LoopErrors,
    connack_of,
    connected,
    new_client,
    read_packet,
    run,
    until,
)
from tests.support import Subscriber, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.mqtt.wire import ConnectFailed, Reason
from tidegate.mqtt.wire.reasons import LOST, SUCCESS
from tidegate.mqtt.wire.subscriber import WireSubscriber

# -- the broker's limits --------------------------------------------------------------------


@pytest.fixture
def limited_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    with LocalBroker(
        tmp_path / "limited",
        extra_config="max_inflight_messages 5\nmax_keepalive 10\nmax_packet_size 3000\n",
    ) as instance:
        yield instance


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_brokers_receive_maximum_packet_size_and_keep_alive(
    limited_broker: LocalBroker, protocol: str
) -> None:
    async def main() -> None:
        client = new_client(protocol, Calls(), keepalive=10)
        await connected(client, limited_broker.port)
        if protocol == "5":
            assert (client.receive_maximum, client.max_packet) == (5, 3000)
        else:  # MQTT 3.1.1 has no way to say: no limit known
            assert (client.receive_maximum, client.max_packet) == (65535, None)
        client.disconnect()
        # MQTT 5: the broker's Server Keep Alive replaces a longer one asked for.
        longer = new_client("5", Calls(), keepalive=60)
        await connected(longer, limited_broker.port)
        assert longer.keepalive == 10
        longer.disconnect()

    run(main())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_message_is_reported_with_its_reason_and_the_connection_stays(
    tmp_path: Path, protocol: str
) -> None:
    calls = Calls()
    with LocalBroker(tmp_path / "small", extra_config="message_size_limit 1000\n") as small:
        live = Subscriber(small.host, small.port, "wire/big").start()

        async def main() -> None:
            client = new_client(protocol, calls)
            await connected(client, small.port)
            big = client.publish("wire/big", b"x" * 2000, 1, False)
            await until(lambda: bool(calls.published), 5, "the answer to the large one")
            if protocol == "5":
                assert calls.published == [(big, Reason(0x95))]
                assert calls.published[0][1].is_failure
                assert str(calls.published[0][1]) == "Packet too large"
            else:
                # MQTT 3.1.1 has no way to refuse: Mosquitto acknowledges and drops it.
                # Only a size limit of the publisher's own keeps such messages.
                assert calls.published == [(big, SUCCESS)]
            fits = client.publish("wire/big", b"fits", 1, False)
            await until(lambda: len(calls.published) == 2, 5, "the next ack")
            assert calls.published[1] == (fits, SUCCESS)  # a subscriber is there
            await asyncio.to_thread(wait_until, lambda: bool(live.snapshot()), 5, "the small one")
            assert calls.disconnects == []
            client.disconnect()

        try:
            run(main())
        finally:
            live.stop()
        assert [m.payload for m in live.snapshot()] == [b"fits"]


# -- brokers that break the protocol (fake: Mosquitto does not) -----------------------------


GARBAGE = [
    ("3.1.1", b"\x40\xff\xff\xff\xff\x01", "malformed packet"),
    ("5", b"\x40\xff\xff\xff\xff\x01", "malformed packet"),
    ("3.1.1", b"\x40\x01\x00", "malformed PUBACK"),
    ("5", b"\xe0\x03\x8d\x01\x24", "malformed properties"),  # a DISCONNECT cut short
    ("5", b"\xe0\x05\x8d\x03\x1f\x00\x09", "malformed properties"),
    ("3.1.1", b"\x90\x03\x00\x01\x00", "unexpected packet of type 9"),
    ("3.1.1", b"\xe0\x00", "3.1.1 broker sent DISCONNECT"),
    ("5", b"\x34\x08\x00\x01t\x00\x05\x00ab", "QoS 2"),
    ("5", connack_of("5"), "second CONNACK"),
]


@pytest.mark.parametrize(("protocol", "garbage", "detail"), GARBAGE)
def test_garbage_after_connack_ends_the_connection_with_a_reason(
    protocol: str, garbage: bytes, detail: str
) -> None:
    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of(protocol))
        await read_packet(reader)  # the first PUBLISH: connected
        writer.write(garbage)
        await reader.read()

    calls = Calls()

    async def main() -> None:
        errors = LoopErrors().install()
        async with FakeBroker(broker) as fake:
            client = new_client(protocol, calls)
            await connected(client, fake.port)
            client.publish("wire/g", b"", 0, False)
            await until(lambda: bool(calls.disconnects), 5, "the connection to end")
        assert errors == []

    run(main())
    ((reason, from_broker, text),) = calls.disconnects
    assert (reason, from_broker) == (LOST, False)
    assert detail in text


def test_the_brokers_disconnect_is_reported_with_its_reason_string() -> None:
    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of("5"))
        await read_packet(reader)
        writer.write(b"\xe0\x10\x98\x0e\x1f\x00\x0bmaintenance")
        writer.close()

    calls = Calls()

    async def main() -> None:
        async with FakeBroker(broker) as fake:
            client = new_client("5", calls)
            await connected(client, fake.port)
            client.publish("wire/d", b"", 0, False)
            await until(lambda: bool(calls.disconnects), 5, "the broker's DISCONNECT")

    run(main())
    assert calls.disconnects == [(Reason(0x98), True, "Administrative action (maintenance)")]


def test_a_subscriber_told_to_go_before_subscribing_says_why() -> None:
    # Two gateways with one client id: the broker takes the session over at once.
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of("5") + b"\xe0\x02\x8e\x00")  # DISCONNECT: session taken over
        await reader.read()

    ends: list[str] = []

    async def main() -> None:
        async with FakeBroker(script) as fake:
            subscriber = WireSubscriber(
                client_id="twin",
                v5=True,
                keepalive=30,
                username=None,
                password=None,
                clean=True,
                session_expiry=0,
                on_message=lambda _m: None,
                on_disconnect=lambda _r, _b, detail: ends.append(detail),
                room=lambda: True,
            )
            await subscriber.connect("127.0.0.1", fake.port, None, give_up_after=5)
            await until(lambda: bool(ends), 5, "the end of the connection")
            with pytest.raises(ConnectFailed, match="Session taken over"):
                await subscriber.subscribe([("in/#", 1)])

    run(main())
