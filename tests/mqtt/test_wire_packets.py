"""The wire client's codec: encoding, framing and decoding, without I/O.

What the broker makes of our CONNECT and PUBLISH is checked against Mosquitto in
``test_wire_publish`` and ``test_wire_session``; here the framing and decoding of
what a broker sends, and the encodings' own structure.
"""

from __future__ import annotations

import pytest

from tidegate.mqtt.wire import Reason, packets
from tidegate.mqtt.wire.packets import Packet, ProtocolViolation, frames, properties, varint
from tidegate.mqtt.wire.reasons import SUCCESS

# -- variable byte integers -----------------------------------------------------------------

VARINTS = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"),
    (2097152, b"\x80\x80\x80\x01"),
    (268435455, b"\xff\xff\xff\x7f"),
]


@pytest.mark.parametrize(("n", "encoded"), VARINTS)
def test_varint_encodes_the_edges(n: int, encoded: bytes) -> None:
    assert varint(n) == encoded


@pytest.mark.parametrize(("n", "encoded"), VARINTS)
def test_a_remaining_length_is_read_back(n: int, encoded: bytes) -> None:
    head = b"\x30" + encoded
    if n <= packets.MAX_INCOMING:
        body = bytes(i % 251 for i in range(n))
        assert frames(head + body + b"\xd0") == ([Packet(3, 0, body)], b"\xd0")
        if n:  # one byte short: nothing yet, all of it kept
            assert frames(head + body[:-1]) == ([], head + body[:-1])
    else:
        # Too large to take, but the length named in the refusal is the one encoded.
        with pytest.raises(ProtocolViolation, match=f"packet of {n} bytes"):
            frames(head)


@pytest.mark.parametrize(("n", "encoded"), VARINTS)
def test_a_properties_length_is_read_back(n: int, encoded: bytes) -> None:
    # Properties of that length, or a refusal naming it as longer than the packet.
    if n == 0:
        assert properties(encoded, 0) == {}
    else:
        with pytest.raises(ProtocolViolation, match="longer than the packet"):
            properties(encoded, 0)


def test_a_remaining_length_of_five_bytes_is_a_protocol_violation() -> None:
    with pytest.raises(ProtocolViolation, match="malformed"):
        frames(b"\x30\xff\xff\xff\xff\x01" + b"x" * 10)
    with pytest.raises(ProtocolViolation, match="malformed"):
        frames(b"\x30\x80\x80\x80\x80")
    # Four bytes with more to come is only incomplete.
    assert frames(b"\x30\xff\xff\xff") == ([], b"\x30\xff\xff\xff")


# -- framing ------------------------------------------------------------------------------


def _stream() -> tuple[bytes, list[Packet]]:
    """What a broker may send a publisher in one go, and the packets in it."""
    expected = [
        Packet(2, 0, b"\x00\x00\x03\x21\x00\x05"),  # CONNACK, Receive Maximum 5
        Packet(4, 0, b"\x00\x01"),  # PUBACK
        Packet(4, 0, b"\x00\x02\x10\x00"),  # PUBACK, no matching subscribers
        Packet(13, 0, b""),  # PINGRESP
        Packet(
            3, 2, b"\x00\x03a/b\x00\x07" + bytes(range(256)) * 2
        ),  # PUBLISH QoS 1, 2-byte length
        Packet(4, 0, b"\xff\xff"),
        Packet(14, 0, b"\x8b\x00"),  # DISCONNECT, server shutting down
    ]
    data = b"".join(bytes([p.kind << 4 | p.flags]) + varint(len(p.body)) + p.body for p in expected)
    return data, expected


def test_frames_survive_a_split_at_every_byte() -> None:
    data, expected = _stream()
    assert frames(data) == (expected, b"")
    for cut in range(len(data) + 1):
        first, rest = frames(data[:cut])
        second, left = frames(rest + data[cut:])
        assert (first + second, left) == (expected, b""), f"split at byte {cut}"


def test_frames_fed_a_byte_at_a_time() -> None:
    data, expected = _stream()
    found: list[Packet] = []
    buffer = b""
    for i in range(len(data)):
        more, buffer = frames(buffer + data[i : i + 1])
        found += more
    assert (found, buffer) == (expected, b"")


# -- properties -----------------------------------------------------------------------------


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _props(*items: bytes) -> bytes:
    block = b"".join(items)
    return varint(len(block)) + block


def test_properties_of_every_type() -> None:
    block = _props(
        b"\x01\x01",  # payload format indicator: byte
        b"\x24\x01",  # maximum QoS: byte
        b"\x21\x01\x00",  # receive maximum: two bytes
        b"\x13\x00\x3c",  # server keep alive: two bytes
        b"\x27\x00\x10\x00\x00",  # maximum packet size: four bytes
        b"\x11\xff\xff\xff\xff",  # session expiry: four bytes
        b"\x0b\x80\x01",  # subscription identifier: variable byte integer
        b"\x1f" + _field("bitte später".encode()),  # reason string: UTF-8
        b"\x12" + _field(b"auto-1"),  # assigned client identifier: UTF-8
        b"\x09" + _field(b"\x00\xff\x01"),  # correlation data: binary
        b"\x26" + _field(b"region") + _field(b"eu"),  # user property: a pair
        b"\x26" + _field(b"region") + _field(b"us"),  # ... which may repeat
        b"\x26" + _field(b"") + _field(b""),
    )
    assert properties(b"\xaa" + block, 1) == {
        0x01: 1,
        0x24: 1,
        0x21: 256,
        0x13: 60,
        0x27: 1 << 20,
        0x11: 0xFFFFFFFF,
        0x0B: 128,
        0x1F: "bitte später",
        0x12: "auto-1",
        0x09: b"\x00\xff\x01",
        0x26: [("region", "eu"), ("region", "us"), ("", "")],
    }


@pytest.mark.parametrize("key", [0x00, 0x04, 0x10, 0x14, 0x20, 0x2B, 0x7F, 0xFF])
def test_an_unknown_property_is_a_protocol_violation(key: int) -> None:
    with pytest.raises(ProtocolViolation, match=f"unknown property 0x{key:02X}"):
        properties(_props(bytes([key, 0, 0])), 0)


@pytest.mark.parametrize(
    "block",
    [
        b"\x1f\x00\x05abc",  # a string longer than the packet
        b"\x1f\x00",  # a string's length cut off
        b"\x26\x00\x01a\x00\x09b",  # a user property's value longer than the packet
        b"\x09\x00\x03\x01",  # binary data longer than the packet
        b"\x24",  # a byte that is not there
        b"\x21\x00",  # half of a two-byte integer
        b"\x27\x00\x00\x01",  # three bytes of a four-byte integer
        b"\x0b\x80",  # a variable byte integer cut off
    ],
    ids=["string", "string-length", "pair", "binary", "byte", "two", "four", "varint"],
)
def test_a_value_running_past_the_end_is_a_protocol_violation(block: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="malformed"):
        properties(_props(block), 0)


def test_a_value_running_past_the_properties_into_the_packet_is_a_protocol_violation() -> None:
    # The properties say 2 bytes; the string inside them claims 3 of what follows.
    with pytest.raises(ProtocolViolation, match="malformed"):
        properties(b"\x02\x1f\x00\x03abc", 0)
    with pytest.raises(ProtocolViolation, match="malformed"):
        properties(b"\x02\x27\x00\x00\x00\x01", 0)


# -- decoding what the broker sends ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "name"),
    [
        (1, 0x84, "Unsupported protocol version"),
        (2, 0x85, "Client identifier not valid"),
        (3, 0x88, "Server unavailable"),
        (4, 0x86, "Bad user name or password"),
        (5, 0x87, "Not authorized"),
        (6, 0x80, "Unspecified error"),  # not in 3.1.1: still a refusal
    ],
)
def test_a_311_connack_refusal_is_a_failure_reason_with_a_name(
    code: int, value: int, name: str
) -> None:
    ack = packets.connack(bytes([0, code]), v5=False)
    assert (ack.session_present, ack.reason, ack.properties) == (False, Reason(value), {})
    assert ack.reason.is_failure and str(ack.reason) == name


def test_connack_success_and_session_present() -> None:
    assert packets.connack(b"\x00\x00", v5=False) == (False, SUCCESS, {})
    assert packets.connack(b"\x01\x00", v5=False).session_present
    ack = packets.connack(b"\x01\x00\x05\x21\x00\x05\x24\x01", v5=True)
    assert ack == (True, SUCCESS, {0x21: 5, 0x24: 1})
    refused = packets.connack(b"\x00\x86\x00", v5=True)
    assert refused.reason.is_failure and str(refused.reason) == "Bad user name or password"
    with pytest.raises(ProtocolViolation):
        packets.connack(b"\x00", v5=False)


def test_a_311_connack_to_an_mqtt_5_connect() -> None:
    # A broker that knows only 3.1.1 refuses in its own terms (no properties)...
    old = packets.connack(b"\x00\x01", v5=True)
    assert str(old.reason) == "Unsupported protocol version" and old.reason.is_failure
    # ...but an MQTT 5 CONNACK without properties is still malformed otherwise.
    with pytest.raises(ProtocolViolation):
        packets.connack(b"\x00\x00", v5=True)


def test_puback_with_and_without_a_reason_code() -> None:
    assert packets.puback_of(b"\x01\x02") == (0x0102, SUCCESS)  # 3.1.1, or MQTT 5 success
    mid, reason = packets.puback_of(b"\xff\xff\x10")  # MQTT 5 may stop after the code
    assert mid == 0xFFFF and not reason.is_failure and str(reason) == "No matching subscribers"
    mid, reason = packets.puback_of(b"\x00\x07\x97\x00")
    assert mid == 7 and reason.is_failure and str(reason) == "Quota exceeded"
    mid, reason = packets.puback_of(b"\x00\x08\x95\x05\x1f\x00\x02no")
    assert mid == 8 and reason == Reason(0x95) and str(reason) == "Packet too large"
    with pytest.raises(ProtocolViolation, match="PUBACK"):
        packets.puback_of(b"\x00")


def test_disconnect_with_a_reason_string() -> None:
    body = b"\x98" + _props(b"\x1f" + _field(b"maintenance"), b"\x26" + _field(b"a") + _field(b"b"))
    assert packets.disconnect_of(body, v5=True) == (Reason(0x98), "maintenance")
    assert str(Reason(0x98)) == "Administrative action"
    assert packets.disconnect_of(b"\x8b", v5=True) == (Reason(0x8B), "")
    assert packets.disconnect_of(b"", v5=True) == (SUCCESS, "")
    with pytest.raises(ProtocolViolation, match=r"3\.1\.1"):
        packets.disconnect_of(b"", v5=False)


def test_reason_names() -> None:
    assert str(Reason(0x42)) == "reason code 0x42"
    assert not Reason(0x10).is_failure and Reason(0x80).is_failure
    assert f"{Reason(0x8D)}" == "Keep alive timeout"


# -- the encodings' structure (the broker's view of them: test_wire_publish, _session) ----


@pytest.mark.parametrize("v5", [False, True])
@pytest.mark.parametrize("qos", [0, 1])
@pytest.mark.parametrize("size", [0, 1, *range(117, 124), *range(16372, 16380), 20000])
def test_publish_frames_to_its_parts(v5: bool, qos: int, size: int) -> None:
    # Sizes around 127/128 and 16383/16384 of remaining length: the short-header path
    # and the variable byte integer must agree with what a reader makes of them.
    topic = packets.topic_field("t/ü")
    payload = bytes(i % 256 for i in range(size))
    data = packets.publish(topic, payload, qos, True, 0xBEEF, v5=v5)
    (packet,), rest = frames(data)
    assert rest == b""
    assert (packet.kind, packet.flags) == (3, qos << 1 | 1)
    assert packet.body == topic + (b"\xbe\xef" if qos else b"") + (b"\x00" if v5 else b"") + payload
    assert packets.topic_field("t/ü") == b"\x00\x04t/\xc3\xbc"


@pytest.mark.parametrize("v5", [False, True])
def test_connect_frames_to_its_parts(v5: bool) -> None:
    data = packets.connect(
        client_id="gw-1",
        v5=v5,
        keepalive=300,
        username="user",
        password=b"pw",
        will_topic="gw/status",
        will_payload=b"offline",
    )
    (packet,), rest = frames(data)
    assert (packet.kind, packet.flags, rest) == (1, 0, b"")
    props = b"\x00" if v5 else b""
    assert packet.body == (
        b"\x00\x04MQTT"
        + bytes([5 if v5 else 4, 0b1110_1110])  # user, password, will retain/QoS 1/flag, clean
        + b"\x01\x2c"
        + props
        + b"\x00\x04gw-1"
        + props
        + b"\x00\x09gw/status\x00\x07offline\x00\x04user\x00\x02pw"
    )
    bare = packets.connect(
        client_id="",
        v5=v5,
        keepalive=0,
        username=None,
        password=None,
        will_topic="w",
        will_payload=b"",
    )
    assert frames(bare)[0][0].body[7] == 0b0010_1110


def test_strings_longer_than_mqtt_allows_are_refused() -> None:
    with pytest.raises(ValueError, match="string"):
        packets.utf8("x" * 0x10000)
    with pytest.raises(ValueError, match="binary"):
        packets.binary(b"x" * 0x10000)
    assert packets.utf8("x" * 0xFFFF)[:2] == b"\xff\xff"


def test_puback_and_fixed_packets() -> None:
    assert packets.puback(0x1234) == b"\x40\x02\x12\x34"
    assert frames(packets.PINGREQ_PACKET + packets.DISCONNECT_PACKET) == (
        [Packet(12, 0, b""), Packet(14, 0, b"")],
        b"",
    )
