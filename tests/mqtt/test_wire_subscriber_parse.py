"""An incoming PUBLISH as the subscriber decodes it: inline, in ``WireSubscriber._parse``
(its hot path, the only decoder of a PUBLISH). A scripted broker sends the bytes right
after its CONNACK, in one write (one read of the socket, over loopback); what the
subscriber hands on, and how its connection ends, is what is checked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from tests.mqtt.support import (
    PROTOCOLS,
    FakeBroker,
    LoopErrors,
    connack_of,
    read_packet,
    run,
    until,
)
from tidegate.mqtt.wire import Reason, packets
from tidegate.mqtt.wire.reasons import LOST
from tidegate.mqtt.wire.subscriber import Message, WireSubscriber


@dataclass
class Heard:
    """What a subscriber reported: its messages and the end of its connection."""

    messages: list[Message] = field(default_factory=list)
    ends: list[tuple[Reason, bool, str]] = field(default_factory=list)
    errors: LoopErrors = field(default_factory=LoopErrors)
    """What escaped the subscriber into the event loop's exception handler."""


def heard(protocol: str, sent: bytes, *, until_the_end: bool = False) -> Heard:
    """What a subscriber hears when the broker sends ``sent`` right after the CONNACK:
    up to its first message, or with ``until_the_end`` up to the end of the connection."""
    out = Heard()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)  # CONNECT
        writer.write(connack_of(protocol, session_present=True) + sent)
        await reader.read()

    async def main() -> None:
        out.errors.install()
        async with FakeBroker(script) as fake:
            subscriber = WireSubscriber(
                client_id="parse",
                v5=protocol == "5",
                keepalive=30,
                username=None,
                password=None,
                clean=False,
                session_expiry=60,
                on_message=out.messages.append,
                on_disconnect=lambda reason, by_broker, detail: out.ends.append(
                    (reason, by_broker, detail)
                ),
                room=lambda: True,
            )
            await subscriber.connect("127.0.0.1", fake.port, None, give_up_after=5)
            if until_the_end:
                await until(lambda: bool(out.ends), 5, "the end of the connection")
            else:
                await until(lambda: bool(out.messages), 5, "a message")
            subscriber.close(goodbye=False)

    run(main())
    return out


def publish_packet(first: int, body: bytes) -> bytes:
    """A PUBLISH of ``body`` as given, whatever is inside: ``first`` is its first byte."""
    return bytes([first]) + packets.varint(len(body)) + body


def fields(message: Message) -> tuple[bytes, int, bytes, int, bool, bool]:
    return (
        message.topic_bytes,
        message.mid,
        message.payload,
        message.qos,
        message.retain,
        message.dup,
    )


# -- what is handed on --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("qos", [0, 1])
@pytest.mark.parametrize(
    "topic",
    ["t/ü", "sensors/" + "x" * 300],  # the latter's length has a high byte (and the packet's 2)
    ids=["short topic", "long topic"],
)
def test_a_publish_reads_back_what_publish_encodes(protocol: str, qos: int, topic: str) -> None:
    sent = packets.publish(
        packets.topic_field(topic), b"\x00payload", qos, True, 0xBEEF, v5=protocol == "5"
    )
    (message,) = heard(protocol, sent).messages
    assert fields(message) == (
        topic.encode(),
        0xBEEF if qos else 0,
        b"\x00payload",
        qos,
        True,
        False,
    )
    assert message.topic == topic


@pytest.mark.parametrize(
    "props",
    [
        b"\x01\x01" + b"\x03\x00\x10application/json",  # payload format, content type
        b"\x26\x00\x04note\x00\xc8" + b"n" * 200,  # a user property: a 2-byte length
    ],
    ids=["short", "long"],
)
def test_mqtt5_properties_are_skipped(props: bytes) -> None:
    body = b"\x00\x01t" + b"\x00\x09" + packets.varint(len(props)) + props + b"{}"
    (message,) = heard("5", publish_packet(0x32, body)).messages
    assert fields(message) == (b"t", 9, b"{}", 1, False, False)


def test_a_topic_that_is_not_utf8_is_kept_as_bytes() -> None:
    (message,) = heard("3.1.1", publish_packet(0x30, b"\x00\x02\xff\xfe" + b"x")).messages
    assert (message.topic_bytes, message.payload) == (b"\xff\xfe", b"x")
    with pytest.raises(UnicodeDecodeError):
        _ = message.topic


# -- malformed: a whole packet whose fields run past its end -----------------------------------


MALFORMED = [
    ("3.1.1", 0x30, b"\x00"),
    ("3.1.1", 0x30, b"\x00\x09abc"),
    ("3.1.1", 0x32, b"\x00\x01t\x00"),
    ("3.1.1", 0x32, b"\x00\x01t"),
    ("5", 0x30, b"\x00\x01t"),
    ("5", 0x30, b"\x00\x01t\x05ab"),
    ("5", 0x30, b"\x00\x01t\x80\x01" + b"x" * 10),
]
MALFORMED_IDS = [
    "no topic length",
    "topic past the end",
    "half a packet id",
    "no packet id",
    "no properties length",
    "properties longer than the packet",
    "long properties longer than the packet",
]


@pytest.mark.parametrize(("protocol", "first", "body"), MALFORMED, ids=MALFORMED_IDS)
@pytest.mark.parametrize(
    "then",
    [b"", publish_packet(0x30, b"\x00\x01tX")],
    ids=["at the end of the read", "before another packet"],
)
def test_a_publish_that_runs_past_its_end_ends_the_connection_as_malformed(
    protocol: str, first: int, body: bytes, then: bytes
) -> None:
    """Not an exception out of the decoder, nor a message made of the next packet's bytes:
    the connection ends, with the reason."""
    got = heard(protocol, publish_packet(first, body) + then, until_the_end=True)
    ((reason, from_broker, detail),) = got.ends
    assert (reason, from_broker) == (LOST, False)
    assert detail.startswith("malformed PUBLISH")
    assert got.messages == []
    assert got.errors == []
