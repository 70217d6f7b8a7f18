"""The wire client against a real Mosquitto (and, for what Mosquitto never does, a
scripted fake broker on loopback): publishing, acknowledgements, the Last Will,
credentials, TLS, keep-alive, the broker's limits and its protocol violations."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mqtt.support import (
    PROTOCOLS,
    Calls,
    FakeBroker,
    FreezableProxy,
    LoopErrors,
    make_pki,
    new_client,
    read_packet,
    until,
)
from tests.support import Received, Subscriber, wait_until
from tidegate.demo.local_broker import LocalBroker, free_port
from tidegate.mqtt.connection import TlsSection
from tidegate.mqtt.tls import tls_context
from tidegate.mqtt.wire import ConnectFailed, Reason, WireClient, packets
from tidegate.mqtt.wire.reasons import LOST, SUCCESS

PASSWORD = "wire-Pa55word"
DISCONNECTED = (SUCCESS, False, "disconnected")


def unheard(protocol: str) -> Reason:
    """A PUBACK's reason for a message nobody subscribed to: MQTT 5 says so (not a failure)."""
    return Reason(0x10) if protocol == "5" else SUCCESS


def run(main: Coroutine[Any, Any, None], timeout: float = 20) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await main

    asyncio.run(bounded())


async def connected(client: WireClient, port: int, host: str = "127.0.0.1") -> None:
    ack = await client.connect(host, port, None, give_up_after=5)
    assert ack.reason == SUCCESS and not ack.session_present


def by_topic(messages: list[Received]) -> dict[str, tuple[bytes, bool, int]]:
    return {m.topic: (m.payload, m.retain, m.qos) for m in messages}


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


# -- Last Will ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_abort_leaves_the_retained_will_and_disconnect_does_not(
    broker: LocalBroker, protocol: str
) -> None:
    live = Subscriber(broker.host, broker.port, "wire/will/#").start()
    aborted, closed, marker = Calls(), Calls(), Calls()

    async def main() -> None:
        a = new_client(
            protocol, aborted, client_id="a", will_topic="wire/will/a", will_payload=b"a gone"
        )
        b = new_client(
            protocol, closed, client_id="b", will_topic="wire/will/b", will_payload=b"b gone"
        )
        await connected(a, broker.port)
        await connected(b, broker.port)
        a.abort()
        b.disconnect()
        await until(lambda: bool(closed.disconnects), 5, "b's connection to end")
        # The broker has handled b's DISCONNECT (it closed b's socket): a Will of b's
        # would reach the subscriber before this later message.
        m = new_client(protocol, marker, client_id="m")
        await connected(m, broker.port)
        m.publish("wire/will/marker", b"after", 1, False)
        await asyncio.to_thread(
            wait_until,
            lambda: {"wire/will/a", "wire/will/marker"} <= set(by_topic(live.snapshot())),
            5,
            "a's will and the marker",
        )
        m.disconnect()

    try:
        run(main())
    finally:
        live.stop()
    assert by_topic(live.snapshot()) == {
        "wire/will/a": (b"a gone", False, 1),
        "wire/will/marker": (b"after", False, 1),
    }
    assert aborted.disconnects == []  # abort reports nothing
    assert closed.disconnects == [DISCONNECTED]
    late = Subscriber(broker.host, broker.port, "wire/will/#").start()
    try:
        wait_until(lambda: bool(late.snapshot()), 5, "the retained will")
    finally:
        late.stop()
    assert by_topic(late.snapshot()) == {"wire/will/a": (b"a gone", True, 1)}


# -- credentials ----------------------------------------------------------------------------


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwd), "gw", PASSWORD],
        check=True,
        capture_output=True,
    )
    passwd.chmod(0o600)
    with LocalBroker(
        tmp_path / "auth-broker",
        extra_config=f"password_file {passwd}\nallow_anonymous false\n",
    ) as instance:
        yield instance


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_user_name_and_password(auth_broker: LocalBroker, protocol: str) -> None:
    calls = Calls()

    async def main() -> None:
        client = new_client(protocol, calls, username="gw", password=PASSWORD)
        await connected(client, auth_broker.port)
        mid = client.publish("wire/auth", b"in", 1, False)
        await until(lambda: bool(calls.published), 5, "the ack")
        assert calls.published == [(mid, unheard(protocol))]
        client.disconnect()
        # Mosquitto 2.0 answers a wrong password, an unknown user and no credentials
        # alike with "not authorized" (3.1.1 return code 5, MQTT 5 reason 0x87), never
        # with "bad user name or password".
        for username, password in (("gw", "not-" + PASSWORD), ("nobody", PASSWORD), (None, None)):
            refused = new_client(protocol, calls, username=username, password=password)
            ack = await refused.connect(auth_broker.host, auth_broker.port, None, give_up_after=5)
            assert ack.reason == Reason(0x87) and ack.reason.is_failure
            assert str(ack.reason) == "Not authorized"
            assert refused.publish("wire/auth", b"", 1, False) == -1

    run(main())
    assert calls.disconnects == [DISCONNECTED]  # a refused connect is not a disconnect


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(tmp_path: Path, pki: dict[str, Path]) -> Iterator[LocalBroker]:
    with LocalBroker(
        tmp_path / "tls-broker",
        extra_config=(
            f"cafile {pki['ca.crt']}\ncertfile {pki['server.crt']}\n"
            f"keyfile {pki['server.key']}\nrequire_certificate true\n"
        ),
    ) as instance:
        yield instance


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tls_with_a_client_certificate(
    tls_broker: LocalBroker, pki: dict[str, Path], protocol: str
) -> None:
    calls = Calls()
    good = tls_context(
        TlsSection(ca_file=pki["ca.crt"], cert_file=pki["client.crt"], key_file=pki["client.key"])
    )
    stranger = tls_context(
        TlsSection(
            ca_file=pki["other-ca.crt"], cert_file=pki["client.crt"], key_file=pki["client.key"]
        )
    )
    anonymous = tls_context(TlsSection(ca_file=pki["ca.crt"]))

    async def main() -> None:
        client = new_client(protocol, calls)
        ack = await client.connect("127.0.0.1", tls_broker.port, good, give_up_after=5)
        assert ack.reason == SUCCESS
        mid = client.publish("wire/tls", b"over TLS", 1, False)
        await until(lambda: bool(calls.published), 5, "the ack")
        assert calls.published == [(mid, unheard(protocol))]
        client.disconnect()
        await until(lambda: bool(calls.disconnects), 5, "the end of the connection")

        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await new_client(protocol, calls).connect(
                "127.0.0.1", tls_broker.port, stranger, give_up_after=5
            )
        # Without a certificate of ours the broker ends the handshake (TLS 1.3: after
        # it completed on our side, so the refusal comes as the connection closing).
        with pytest.raises(ConnectFailed, match="CERTIFICATE_REQUIRED"):
            await new_client(protocol, calls).connect(
                "127.0.0.1", tls_broker.port, anonymous, give_up_after=5
            )

    run(main())
    assert calls.disconnects == [DISCONNECTED]


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


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_broker_that_cannot_keep_our_retained_will_refuses_the_connection(
    tmp_path: Path, protocol: str
) -> None:
    with LocalBroker(tmp_path / "no-retain", extra_config="retain_available false\n") as b:

        async def main() -> None:
            client = new_client(protocol, Calls())
            if protocol == "5":
                ack = await client.connect(b.host, b.port, None, give_up_after=5)
                assert ack.reason == Reason(0x9A) and str(ack.reason) == "Retain not supported"
            else:  # 3.1.1 has no return code for it: the broker hangs up
                with pytest.raises(ConnectFailed, match="closed by the broker"):
                    await client.connect(b.host, b.port, None, give_up_after=5)

        run(main())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_session_taken_over_is_reported(broker: LocalBroker, protocol: str) -> None:
    first, second = Calls(), Calls()

    async def main() -> None:
        await connected(new_client(protocol, first, client_id="same"), broker.port)
        await connected(new_client(protocol, second, client_id="same"), broker.port)
        await until(lambda: bool(first.disconnects), 5, "the first connection to end")

    run(main())
    # MQTT 5 lets the broker say why (DISCONNECT, 0x8E "Session taken over"): Mosquitto
    # 2.0.11 just closes the socket, in both versions.
    assert first.disconnects == [(LOST, False, "closed by the broker")]
    assert second.disconnects == []


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


# -- brokers that break the protocol (fake: Mosquitto does not) -----------------------------


def connack_of(protocol: str, session_present: bool = False) -> bytes:
    body = bytes([int(session_present), 0]) + (b"\x00" if protocol == "5" else b"")
    return b"\x20" + bytes([len(body)]) + body


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_resumed_session_is_refused(protocol: str) -> None:
    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(connack_of(protocol, session_present=True))
        await reader.read()

    async def main() -> None:
        errors = LoopErrors().install()
        calls = Calls()
        async with FakeBroker(broker) as fake:
            with pytest.raises(ConnectFailed, match="resumed a session"):
                await new_client(protocol, calls).connect(
                    "127.0.0.1", fake.port, None, give_up_after=5
                )
        assert calls.disconnects == [] and errors == []

    run(main())


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


def test_a_311_only_broker_refusing_mqtt_5_is_a_refusal_not_garbage() -> None:
    # A broker that knows only 3.1.1 answers a v5 CONNECT with its own CONNACK:
    # return code 1 and no properties.
    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(b"\x20\x02\x00\x01")
        await reader.read()

    async def main() -> None:
        async with FakeBroker(broker) as fake:
            ack = await new_client("5", Calls()).connect(
                "127.0.0.1", fake.port, None, give_up_after=5
            )
        assert ack.reason.is_failure and str(ack.reason) == "Unsupported protocol version"

    run(main())


# -- connecting to nothing --------------------------------------------------------------------


def test_a_closed_port_fails_at_once() -> None:
    async def main() -> None:
        async with asyncio.timeout(3):  # far below give_up_after: refused, not timed out
            with pytest.raises(ConnectFailed, match=r"(?i)refused|connect call failed"):
                await new_client("5", Calls()).connect(
                    "127.0.0.1", free_port(), None, give_up_after=30
                )

    run(main())


def test_a_broker_that_never_answers_is_given_up_on() -> None:
    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def main() -> None:
        async with FakeBroker(broker) as fake:
            start = time.monotonic()
            with pytest.raises(ConnectFailed, match=r"no answer within 0\.5 s"):
                await new_client("3.1.1", Calls()).connect(
                    "127.0.0.1", fake.port, None, give_up_after=0.5
                )
            assert time.monotonic() - start >= 0.5

    run(main())
