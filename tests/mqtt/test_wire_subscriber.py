"""The ``mqtt`` driver's link on tidegate's own MQTT code (``WireLink`` on
``WireSubscriber``) against a real Mosquitto: persistent sessions, acknowledgements that
belong to one connection, refused filters, flow control, TLS; a scripted broker for what
Mosquitto will not send (a topic that is not UTF-8, a message in pieces)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.drivers.devices import mqtt_config, mqtt_on, publish, q1
from tests.drivers.harness import Probe, eventually
from tests.mqtt.support import (
    PROTOCOLS,
    Calls,
    FakeBroker,
    FreezableProxy,
    connack_of,
    read_packet,
    run,
    until,
)
from tidegate.demo.local_broker import LocalBroker
from tidegate.drivers.mqtt.arrivals import Arrival, ConnectFailed
from tidegate.drivers.mqtt.config import MqttInputConfig
from tidegate.drivers.mqtt.wire_link import WireLink
from tidegate.mqtt.wire import Reason, packets
from tidegate.mqtt.wire.subscriber import Message, WireSubscriber

RAW = [{"topic": "in/#", "qos": 1, "parse": {"format": "raw"}}]


@dataclass
class Inbox:
    """What a link handed on, and the driver's ``room``."""

    got: list[tuple[Arrival, int]] = field(default_factory=list)
    room: bool = True
    turn = 0
    """Turns of the event loop, where a test counts them."""
    turns: list[int] = field(default_factory=list)
    """The turn in which each message came."""

    def on_message(self, message: Arrival, session: int) -> None:
        self.got.append((message, session))
        self.turns.append(self.turn)

    def payloads(self) -> list[bytes]:
        return [bytes(m.payload) for m, _ in self.got]

    def has(self, payload: bytes) -> bool:
        return payload in self.payloads()


def link_for(config: MqttInputConfig, inbox: Inbox, client_id: str) -> WireLink:
    return WireLink(config, client_id, inbox.on_message, lambda: inbox.room)


async def subscribed(link: WireLink) -> None:
    await link.connect()
    assert await link.subscribe() == []


# -- persistent sessions and acknowledgements ---------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("persistent", [True, False])
def test_a_persistent_session_keeps_queued_qos1_messages_across_a_reconnect(
    broker: LocalBroker, protocol: str, persistent: bool
) -> None:
    """A clean session, the control, gets only what is published once it is back."""

    async def main() -> None:
        config = mqtt_config(broker.port, RAW, protocol=protocol, persistent_session=persistent)
        inbox = Inbox()
        link = link_for(config, inbox, f"keep-{protocol}-{persistent}")
        await subscribed(link)
        link.drop()
        await publish(broker.port, [q1(f"in/{i}", f"away {i}") for i in range(3)])
        await subscribed(link)
        await publish(broker.port, [q1("in/marker", "marker")])
        await until(lambda: inbox.has(b"marker"), 5, "the marker")
        away = [b"away 0", b"away 1", b"away 2"] if persistent else []
        assert inbox.payloads() == [*away, b"marker"]
        assert {session for _, session in inbox.got} == {2}
        assert [m.topic for m, _ in inbox.got][:1] == (["in/0"] if persistent else ["in/marker"])
        link.ack([(m.mid, m.qos, s) for m, s in inbox.got])
        link.drop()

    run(main())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unacked_message_comes_again_and_only_its_own_connection_acks_it(
    broker: LocalBroker, protocol: str
) -> None:
    async def main() -> None:
        config = mqtt_config(broker.port, RAW, protocol=protocol)
        inbox = Inbox()
        link = link_for(config, inbox, f"redeliver-{protocol}")
        await subscribed(link)
        await publish(broker.port, [q1("in/a", "once")])
        await until(lambda: len(inbox.got) == 1, 5, "the message")
        first, session = inbox.got[0]
        assert (first.qos, session) == (1, 1)
        link.drop()  # unacknowledged: the broker keeps it for the session

        for attempt in (2, 3):
            inbox.got.clear()
            await subscribed(link)
            await publish(broker.port, [("in/marker", b"marker", 0, False)])
            await until(lambda: inbox.has(b"marker"), 5, "the marker")
            again = inbox.got[0][0]
            assert (again.payload, inbox.got[0][1]) == (b"once", attempt)
            assert isinstance(again, Message) and again.dup
            # An acknowledgement of an earlier connection's message id, even one equal to
            # this connection's: not sent (the id names another message here).
            link.ack([(first.mid, 1, 1)])
            await publish(broker.port, [("in/marker2", b"marker2", 0, False)])
            await until(lambda: inbox.has(b"marker2"), 5, "the second marker")
            link.drop()

        inbox.got.clear()
        await subscribed(link)
        await publish(broker.port, [("in/marker", b"marker", 0, False)])
        await until(lambda: inbox.has(b"marker"), 5, "the marker")
        assert inbox.payloads()[0] == b"once"
        message, session = inbox.got[0]
        link.ack([(message.mid, 1, session)])
        await publish(broker.port, [("in/marker2", b"marker2", 0, False)])
        await until(lambda: inbox.has(b"marker2"), 5, "the second marker")
        link.drop()

        inbox.got.clear()
        await subscribed(link)
        await publish(broker.port, [("in/marker", b"marker", 0, False)])
        await until(lambda: inbox.has(b"marker"), 5, "the marker")
        assert inbox.payloads() == [b"marker"]  # acknowledged at last: not sent again
        link.drop()

    run(main())


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_filter_is_named_and_the_others_work(protocol: str) -> None:
    """Scripted: Mosquitto 2.0 grants every filter (its ACLs act at delivery), a broker
    with subscribe ACLs answers 0x80 (3.1.1) or a reason code such as 0x87 (5)."""
    v5 = protocol == "5"
    refusal = 0x87 if v5 else 0x80
    subscribes: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of(protocol))
        kind, flags, body = await read_packet(reader)
        assert (kind, flags) == (8, 2)
        subscribes.append(body)
        suback = body[:2] + (b"\x00" if v5 else b"") + bytes([1, refusal])
        writer.write(b"\x90" + bytes([len(suback)]) + suback)
        writer.write(packets.publish(packets.topic_field("in/x"), b"allowed", 0, False, 0, v5=v5))
        await reader.read()

    async def main() -> None:
        subscriptions = [*RAW, {"topic": "secret/#", "qos": 0, "parse": {"format": "raw"}}]
        async with FakeBroker(script) as fake:
            config = mqtt_config(fake.port, subscriptions, protocol=protocol)
            inbox = Inbox()
            link = link_for(config, inbox, f"acl-{protocol}")
            await link.connect()
            assert await link.subscribe() == ["secret/#"]
            await until(lambda: inbox.has(b"allowed"), 5, "the allowed topic's message")
            link.drop()
        options = b"\x00" if v5 else b""
        assert subscribes[0][2:] == options + b"\x00\x04in/#\x01\x00\x08secret/#\x00"

    run(main())


def test_a_broker_that_never_answers_the_subscribe_loses_the_connection() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of("3.1.1"))
        while True:
            await read_packet(reader)  # SUBSCRIBE: never answered

    async def main() -> None:
        async with FakeBroker(script) as fake:
            config = mqtt_config(fake.port, RAW, connect_timeout=0.3)
            link = link_for(config, Inbox(), "mute")
            await link.connect()
            assert await link.subscribe() is None
            assert link.lost.is_set()
            assert link.lost_reason == "no answer to SUBSCRIBE within 0.3 s"
            link.drop()

    run(main())


def test_a_refused_connection_and_a_closed_port_fail_to_connect(broker: LocalBroker) -> None:
    async def main() -> None:
        config = mqtt_config(broker.port, RAW)
        link = link_for(config, Inbox(), "")  # 3.1.1: an empty id needs a clean session
        with pytest.raises(ConnectFailed, match="refused the connection: Client identifier"):
            await link.connect()
        broker.stop()
        with pytest.raises(ConnectFailed, match=r"(?i)refused|connect call failed"):
            await link_for(mqtt_config(broker.port, RAW), Inbox(), "x").connect()

    run(main())


# -- what the broker sends, byte by byte -------------------------------------------------------


def test_a_topic_that_is_not_utf8_raises_as_paho_did_and_pieces_are_joined() -> None:
    large = bytes(range(256)) * 1200  # ~300 kB: more than one read of the socket
    sent = [
        b"\x30\x06\x00\x02\xff\xfeab",  # QoS 0, topic b"\xff\xfe", payload "ab"
        packets.publish(packets.topic_field("in/big"), large, 1, True, 42, v5=False),
    ]

    acked = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of("3.1.1", session_present=True))
        stream = b"".join(sent)
        for at in range(0, 64):  # the first packets one byte at a time, lengths split too
            writer.write(stream[at : at + 1])
            await writer.drain()
        for at in range(64, len(stream), 7000):
            writer.write(stream[at : at + 7000])
            await writer.drain()
        assert await read_packet(reader) == (packets.PUBACK, 0, b"\x00\x2a")
        acked.set()

    async def main() -> None:
        async with FakeBroker(script) as fake:
            inbox = Inbox()
            link = link_for(mqtt_config(fake.port, RAW), inbox, "bytes")
            await link.connect()
            await until(lambda: len(inbox.got) == 2, 5, "both messages")
            odd, big = (m for m, _ in inbox.got)
            with pytest.raises(UnicodeDecodeError):
                _ = odd.topic
            assert (odd.payload, odd.qos, odd.retain) == (b"ab", 0, False)
            assert (big.topic, big.payload == large, big.qos, big.retain, big.mid) == (
                "in/big",
                True,
                1,
                True,
                42,
            )
            link.ack([(42, 1, link.session)])
            async with asyncio.timeout(5):
                await acked.wait()  # the PUBACK, at the broker
            link.drop()

    run(main())


# -- flow control -------------------------------------------------------------------------------


@pytest.mark.parametrize("room", [True, False])
def test_without_room_one_message_is_read_per_turn_of_the_event_loop(room: bool) -> None:
    """As paho's burst reader: while the driver holds enough, its pump runs between reads
    (QoS 0 beyond ``max_pending`` is then dropped by the driver, not piled up here); with
    room, what one read brought is handed on in one go. Scripted, so that the 50 messages
    come in one write (a broker's pace would split them by chance)."""
    burst = b"".join(
        packets.publish(packets.topic_field(f"in/{i}"), b"x", 0, False, 0, v5=False)
        for i in range(50)
    )

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of("3.1.1", session_present=True) + burst)
        await reader.read()

    async def main() -> None:
        inbox = Inbox(room=room)

        async def count_turns() -> None:
            while True:
                inbox.turn += 1
                await asyncio.sleep(0)

        counter = asyncio.ensure_future(count_turns())
        try:
            async with FakeBroker(script) as fake:
                link = link_for(mqtt_config(fake.port, RAW), inbox, "room")
                await link.connect()
                await until(lambda: len(inbox.got) == 50, 5, "50 messages")
                link.drop()
        finally:
            counter.cancel()
        assert [m.topic for m, _ in inbox.got] == [f"in/{i}" for i in range(50)]
        assert len(set(inbox.turns)) == (1 if room else 50)

    run(main())


# -- TLS and keep-alive ---------------------------------------------------------------------------


def test_tls_with_a_client_certificate(tls_broker: LocalBroker, pki: dict[str, Path]) -> None:
    async def main() -> None:
        tls: dict[str, Any] = {
            "ca_file": pki["ca.crt"],
            "cert_file": pki["client.crt"],
            "key_file": pki["client.key"],
        }
        inbox = Inbox()
        config = mqtt_config(tls_broker.port, RAW, tls=tls)
        link = link_for(config, inbox, "tls")
        await subscribed(link)
        link.drop()
        wrong = mqtt_config(tls_broker.port, RAW, tls={**tls, "ca_file": pki["other-ca.crt"]})
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await link_for(wrong, inbox, "tls-wrong").connect()

    run(main())


def test_a_dead_link_is_noticed_by_the_keepalive(broker: LocalBroker) -> None:
    async def main() -> None:
        calls = Calls()
        async with FreezableProxy(broker.host, broker.port) as proxy:
            subscriber = WireSubscriber(
                client_id="frozen",
                v5=False,
                keepalive=1,
                username=None,
                password=None,
                clean=True,
                session_expiry=0,
                on_message=lambda m: None,
                on_disconnect=calls.on_disconnect,
                room=lambda: True,
            )
            await subscriber.connect("127.0.0.1", proxy.port, None, give_up_after=5)
            assert await subscriber.subscribe([("in/#", 1)]) == [Reason(1)]
            proxy.freeze()
            await until(lambda: bool(calls.disconnects), 4, "the keep-alive's verdict")
        assert "keep-alive" in calls.disconnects[0][2]

    run(main())


# -- which link the driver takes ------------------------------------------------------------------


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_the_driver_receives_on_the_wire_link_unless_a_subscription_is_qos2(
    broker: LocalBroker, qos: int
) -> None:
    async def main() -> None:
        probe = Probe()
        config = mqtt_config(
            broker.port, [{"topic": "in/#", "qos": qos, "parse": {"format": "raw"}}]
        )
        async with mqtt_on(config, probe) as driver:
            assert isinstance(driver.link, WireLink) == (qos < 2)
            await publish(broker.port, [("in/a", b"hello", qos, False)])
            await eventually(lambda: len(probe.events) == 1, "the event")
        assert probe.values() == [("raw", "hello")]

    run(main())
