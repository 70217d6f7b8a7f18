"""The wire client's keep-alive against a real Mosquitto: an idle link kept up, a
dead one noticed, a slow but live one kept (sending, and for the subscriber receiving)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from tests.mqtt.support import (
    PROTOCOLS,
    Calls,
    FakeBroker,
    FreezableProxy,
    ThrottlingProxy,
    connack_of,
    connected,
    new_client,
    read_packet,
    run,
    unheard,
    until,
)
from tidegate.demo.local_broker import LocalBroker
from tidegate.mqtt.connection import TlsSection
from tidegate.mqtt.tls import tls_context
from tidegate.mqtt.wire import WireClient, packets
from tidegate.mqtt.wire.reasons import LOST, SUCCESS
from tidegate.mqtt.wire.subscriber import Message, WireSubscriber

# -- keep-alive -----------------------------------------------------------------------------


def test_an_idle_connection_is_kept_alive(broker: LocalBroker) -> None:
    keepalive = 2
    calls = {p: Calls() for p in PROTOCOLS}

    async def main() -> None:
        clients = {
            p: new_client(p, calls[p], keepalive=keepalive, client_id=f"idle-{p}")
            for p in PROTOCOLS
        }
        for client in clients.values():
            await connected(client, broker.port)
        # The control: a client that says nothing after its CONNECT is dropped by the
        # broker after 1.5 keep-alives, so staying up longer needs the PINGREQs.
        reader, writer = await asyncio.open_connection(broker.host, broker.port)
        writer.write(
            packets.connect(
                client_id="silent",
                v5=False,
                keepalive=keepalive,
                username=None,
                password=None,
                will_topic="wire/silent",
                will_payload=b"",
            )
        )
        assert (await read_packet(reader))[0] == packets.CONNACK
        start = time.monotonic()
        dropped = asyncio.ensure_future(reader.read())
        # Watching for a disconnect over 3 keep-alives (twice what the broker allows),
        # and until the broker has dropped the silent one (Mosquitto 2.0 looks at
        # keep-alives only every few seconds: after 5 to 6 s here).
        await until(
            lambda: (
                (time.monotonic() > start + 3 * keepalive and dropped.done())
                or any(c.disconnects for c in calls.values())
            ),
            3 * keepalive + 6,
            "three keep-alive periods and the silent client dropped",
        )
        writer.close()
        assert dropped.result() == b""
        assert all(c.disconnects == [] for c in calls.values())
        mids = {
            p: client.publish("wire/idle", b"still here", 1, False) for p, client in clients.items()
        }
        await until(lambda: all(c.published for c in calls.values()), 5, "acks after the idle time")
        assert all(calls[p].published == [(mids[p], unheard(p))] for p in PROTOCOLS)
        for client in clients.values():
            client.disconnect()

    run(main())


def test_a_dead_link_is_noticed_by_keep_alive(broker: LocalBroker) -> None:
    keepalive = 2
    # How each link is used when it dies: 3.1.1 idle; MQTT 5 with a QoS-1 message
    # waiting for its ack; MQTT 5 sending QoS-0 messages all along (nothing of the
    # broker's is due for those, and the client is never idle long enough to ping).
    uses = {"idle": "3.1.1", "qos1": "5", "qos0": "5"}
    calls = {use: Calls() for use in uses}

    async def stream(client: WireClient) -> None:
        while True:
            client.publish("wire/dead/0", b"into the void", 0, False)
            await asyncio.sleep(0.1)  # a sensor's pace

    async def main() -> None:
        async with FreezableProxy(broker.host, broker.port) as proxy:
            clients = {
                use: new_client(p, calls[use], keepalive=keepalive, client_id=f"dead-{use}")
                for use, p in uses.items()
            }
            for client in clients.values():
                await connected(client, proxy.port)
            streaming = asyncio.ensure_future(stream(clients["qos0"]))
            proxy.freeze()
            clients["qos1"].publish("wire/dead/1", b"lost", 1, False)
            try:
                await until(
                    lambda: all(c.disconnects for c in calls.values()),
                    1.5 * keepalive + 2,
                    "keep-alive to notice the dead link",
                )
            finally:
                streaming.cancel()

    run(main())
    for use in uses:
        ((reason, from_broker, detail),) = calls[use].disconnects
        assert (reason, from_broker) == (LOST, False)
        assert "keep-alive" in detail, detail
    assert calls["idle"].published == calls["qos1"].published == []


@pytest.mark.parametrize("link", ["tcp", "tls"])
def test_a_slow_but_live_link_is_kept_while_one_message_takes_many_keep_alives(
    request: pytest.FixtureRequest, link: str
) -> None:
    keepalive = 1
    rate = 64 * 1024
    size = 400 * 1024  # some 6 s at that rate: six keep-alives without an answer
    broker: LocalBroker = request.getfixturevalue("tls_broker" if link == "tls" else "broker")
    tls = None
    if link == "tls":
        pki = request.getfixturevalue("pki")
        ca, crt, key = pki["ca.crt"], pki["client.crt"], pki["client.key"]
        tls = tls_context(TlsSection(ca_file=ca, cert_file=crt, key_file=key))
    calls = {p: Calls() for p in PROTOCOLS}

    async def main() -> None:
        async with ThrottlingProxy(broker.host, broker.port, rate) as proxy:
            clients = {
                p: new_client(p, calls[p], keepalive=keepalive, client_id=f"slow-{p}")
                for p in PROTOCOLS
            }
            for client in clients.values():
                ack = await client.connect("127.0.0.1", proxy.port, tls, give_up_after=5)
                assert ack.reason == SUCCESS
                # A real slow link's send buffer stays small (it grows with the congestion
                # window; loopback's starts at over 1 MB): most of the message waits in
                # asyncio's buffers, for TLS in one that its transport does not show.
                assert client._transport is not None
                sock = client._transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
            start = time.monotonic()
            mids = {
                p: client.publish("wire/slow", bytes(size), 1, False)
                for p, client in clients.items()
            }
            await until(
                lambda: all(c.published or c.disconnects for c in calls.values()),
                size / rate + 5,
                "the acks (or an end)",
            )
            # Not a timing check: that the acks took several keep-alives is what makes
            # this a slow link for the client.
            took = time.monotonic() - start
            assert {p: c.disconnects for p, c in calls.items()} == {p: [] for p in PROTOCOLS}
            assert {p: c.published for p, c in calls.items()} == {
                p: [(mids[p], unheard(p))] for p in PROTOCOLS
            }
            assert took > 3 * keepalive, took
            for client in clients.values():
                client.disconnect()

    run(main())


def test_a_large_message_arriving_slowly_keeps_a_subscriber_alive() -> None:
    # The broker's PINGRESP queues behind a message that takes longer than the keep-alive
    # to arrive: its bytes coming in are the broker talking (paho counts them too).
    big = packets.publish(packets.topic_field("in/big"), b"x" * 20_000, 0, False, 0, v5=False)
    sent = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of("3.1.1"))
        for at in range(0, len(big), 1000):  # ~3 s for the message, keep-alive 1 s
            writer.write(big[at : at + 1000])
            await writer.drain()
            await asyncio.sleep(0.15)  # the link's pace, not a synchronisation
        writer.write(b"\xd0\x00")  # the PINGRESP, behind the message
        sent.set()
        await reader.read()

    got: list[Message] = []
    ends: list[str] = []

    async def main() -> None:
        async with FakeBroker(script) as fake:
            subscriber = WireSubscriber(
                client_id="slow",
                v5=False,
                keepalive=1,
                username=None,
                password=None,
                clean=True,
                session_expiry=0,
                on_message=got.append,
                on_disconnect=lambda _r, _b, detail: ends.append(detail),
                room=lambda: True,
            )
            await subscriber.connect("127.0.0.1", fake.port, None, give_up_after=5)
            await until(lambda: bool(got) or bool(ends), 10, "the message or the end")
            assert not ends, ends
            assert len(got[0].payload) == 20_000
            subscriber.close(goodbye=False)

    run(main())
