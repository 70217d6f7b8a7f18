"""The wire client's connection as a whole: the Last Will, credentials, TLS, refused
and failed connects, session present and session takeover."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt.support import (
    DISCONNECTED,
    PROTOCOLS,
    Calls,
    FakeBroker,
    LoopErrors,
    by_topic,
    connack_of,
    connected,
    new_client,
    read_packet,
    run,
    unheard,
    until,
)
from tests.support import Subscriber, wait_until
from tidegate.demo.local_broker import LocalBroker, free_port
from tidegate.mqtt.connection import TlsSection
from tidegate.mqtt.tls import tls_context
from tidegate.mqtt.wire import ConnectFailed, Reason
from tidegate.mqtt.wire.reasons import LOST, SUCCESS

PASSWORD = "wire-Pa55word"

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


# -- sessions: a clean one, taken over ------------------------------------------------------


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


# -- refused connects -----------------------------------------------------------------------


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
