"""MQTT packets: what the client sends, encoded; what the broker sends, framed and decoded.

The packets a publisher and a QoS 0/1 subscriber exchange (MQTT 3.1.1 and 5):
CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ and DISCONNECT out; CONNACK, PUBACK,
SUBACK, PINGRESP, DISCONNECT and PUBLISH in. Pure functions, no I/O. An incoming
PUBLISH is decoded where it is received, inline (``subscriber``: its hot path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from tidegate.errors import TidegateError
from tidegate.mqtt.wire.reasons import CONNACK_311, Reason

CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP, DISCONNECT = 2, 3, 4, 9, 13, 14
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
"""Normal disconnection in both versions (MQTT 5: no reason code means 0x00)."""

MAX_INCOMING = 1 << 20
"""Largest packet accepted from the broker: a publisher is sent only short ones."""

RECEIVE_MAXIMUM, MAXIMUM_PACKET_SIZE, SERVER_KEEP_ALIVE = 0x21, 0x27, 0x13
TOPIC_ALIAS_MAXIMUM, TOPIC_ALIAS = 0x22, 0x23
SESSION_EXPIRY = 0x11
REASON_STRING, ASSIGNED_CLIENT_ID = 0x1F, 0x12


class ProtocolViolation(TidegateError):
    """The broker sent something MQTT does not allow here; the connection ends."""


# -- encoding ---------------------------------------------------------------------------


def varint(n: int) -> bytes:
    """A variable byte integer (the remaining length, a properties length)."""
    out = bytearray()
    while True:
        digit, n = n & 0x7F, n >> 7
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def utf8(text: str) -> bytes:
    data = text.encode()
    if len(data) > 0xFFFF:
        raise ValueError(f"longer than MQTT allows in a string: {text[:40]!r}...")
    return len(data).to_bytes(2, "big") + data


def binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("longer than MQTT allows in binary data (65,535 bytes)")
    return len(data).to_bytes(2, "big") + data


def connect(
    *,
    client_id: str,
    v5: bool,
    keepalive: int,
    username: str | None,
    password: bytes | None,
    will_topic: str | None,
    will_payload: bytes = b"",
    will_retain: bool = True,
    clean: bool = True,
    session_expiry: int = 0,
) -> bytes:
    """CONNECT; with a Last Will (QoS 1, retained unless ``will_retain`` is False) when
    ``will_topic`` is given.

    ``clean`` False asks the broker to resume the session (3.1.1: clean session off;
    5: clean start off), which MQTT 5 keeps ``session_expiry`` seconds after a disconnect.
    """
    flags = 0x02 if clean else 0x00
    if will_topic is not None:
        flags |= 0x04 | (1 << 3) | (0x20 if will_retain else 0)  # will, will QoS 1, retain
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    header = b"\x00\x04MQTT" + bytes([5 if v5 else 4, flags]) + keepalive.to_bytes(2, "big")
    if v5 and session_expiry:
        header += b"\x05" + bytes([SESSION_EXPIRY]) + session_expiry.to_bytes(4, "big")
    elif v5:
        header += b"\x00"  # no properties: session expiry 0 (ends with the connection)
    body = header + utf8(client_id)
    if will_topic is not None:
        if v5:
            body += b"\x00"  # no will properties
        body += utf8(will_topic) + binary(will_payload)
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += binary(password)
    return b"\x10" + varint(len(body)) + body


def topic_field(topic: str) -> bytes:
    """A PUBLISH's topic name as sent (the publisher keeps these per topic)."""
    return utf8(topic)


def publish(
    topic: bytes,
    payload: bytes,
    qos: int,
    retain: bool,
    packet_id: int,
    *,
    v5: bool,
    properties: bytes = b"",
) -> bytes:
    """PUBLISH; ``topic`` as ``topic_field`` made it (``EMPTY_TOPIC`` with a topic alias);
    in MQTT 5, ``properties`` as ``content_type`` and ``topic_alias`` make them."""
    props = (varint(len(properties)) + properties if properties else b"\x00") if v5 else b""
    length = len(topic) + len(payload) + (2 if qos else 0) + len(props)
    head = (0x30 | (qos << 1) | retain).to_bytes(1, "big") + (
        length.to_bytes(1, "big") if length < 0x80 else varint(length)
    )
    if qos:
        topic += packet_id.to_bytes(2, "big")
    return head + topic + props + payload


EMPTY_TOPIC = b"\x00\x00"
"""The topic name of a PUBLISH that names its topic by an alias the connection set."""
CONTENT_TYPE = 0x03


def content_type(media_type: str) -> bytes:
    """MQTT 5's Content Type property."""
    return bytes([CONTENT_TYPE]) + utf8(media_type)


MESSAGE_EXPIRY = 0x02


def message_expiry(seconds: int) -> bytes:
    """MQTT 5's Message Expiry Interval property (the broker drops the message after it)."""
    return bytes([MESSAGE_EXPIRY]) + min(seconds, 0xFFFFFFFF).to_bytes(4, "big")


def user_property(name: str, value: str) -> bytes:
    """MQTT 5's User Property (a name and a value; a packet may carry many)."""
    return b"\x26" + utf8(name) + utf8(value)


def topic_alias(alias: int) -> bytes:
    """MQTT 5's Topic Alias property."""
    return bytes([TOPIC_ALIAS]) + alias.to_bytes(2, "big")


def puback(packet_id: int) -> bytes:
    return b"\x40\x02" + packet_id.to_bytes(2, "big")


def subscribe(packet_id: int, filters: Sequence[tuple[str, int]], *, v5: bool) -> bytes:
    """SUBSCRIBE to ``(filter, qos)`` pairs; in MQTT 5 the options byte is the QoS alone
    (local messages too, retain as published, retained messages sent at every subscribe)."""
    body = packet_id.to_bytes(2, "big") + (b"\x00" if v5 else b"")
    for topic, qos in filters:
        body += utf8(topic) + bytes([qos])
    return b"\x82" + varint(len(body)) + body


# -- framing ----------------------------------------------------------------------------


class Packet(NamedTuple):
    kind: int
    flags: int
    body: bytes


def frames(buffer: bytes, limit: int = MAX_INCOMING) -> tuple[list[Packet], bytes]:
    """Whole packets at the start of ``buffer``, and what is left (an incomplete one).
    A packet longer than ``limit`` is a ProtocolViolation."""
    out: list[Packet] = []
    pos, end = 0, len(buffer)
    while pos + 2 <= end:
        first = buffer[pos]
        length, at = buffer[pos + 1], pos + 2
        if length & 0x80:
            length, at = varint_at(buffer, pos + 1)
            if at < 0:
                return out, buffer[pos:]
        if length > limit:
            raise ProtocolViolation(f"the broker sent a packet of {length} bytes")
        if at + length > end:
            return out, buffer[pos:]
        out.append(Packet(first >> 4, first & 0x0F, buffer[at : at + length]))
        pos = at + length
    return out, buffer[pos:]


# -- decoding ---------------------------------------------------------------------------


class ConnAck(NamedTuple):
    session_present: bool
    reason: Reason
    properties: dict[int, object]


def connack(body: bytes, v5: bool) -> ConnAck:
    if len(body) < 2:
        raise ProtocolViolation("malformed CONNACK")
    present = bool(body[0] & 0x01)
    if v5 and len(body) == 2 and body[1] in CONNACK_311 and body[1]:
        # No properties: a broker that knows only 3.1.1 refusing an MQTT 5 CONNECT
        # (return code 1, unacceptable protocol version) in its own terms.
        return ConnAck(present, Reason(CONNACK_311[body[1]]), {})
    if v5:
        return ConnAck(present, Reason(body[1]), properties(body, 2))
    return ConnAck(present, Reason(CONNACK_311.get(body[1], 0x80)), {})


def puback_of(body: bytes) -> tuple[int, Reason]:
    """A PUBACK's packet id and reason code (none: success, as in 3.1.1)."""
    if len(body) < 2:
        raise ProtocolViolation("malformed PUBACK")
    return (body[0] << 8) | body[1], Reason(body[2] if len(body) > 2 else 0)


def suback_of(body: bytes, v5: bool) -> tuple[int, list[Reason]]:
    """A SUBACK's packet id and one reason code per filter (3.1.1: the granted QoS, or
    0x80 for a refusal, which reads the same as MQTT 5's "Unspecified error")."""
    if len(body) < 3:
        raise ProtocolViolation("malformed SUBACK")
    at = 2
    if v5:
        length, at = read_varint(body, at)
        at += length
    if at >= len(body):
        raise ProtocolViolation("malformed SUBACK: no reason codes")
    return (body[0] << 8) | body[1], [Reason(code) for code in body[at:]]


def disconnect_of(body: bytes, v5: bool) -> tuple[Reason, str]:
    """The broker's DISCONNECT (MQTT 5 only): its reason code and reason string, if any."""
    if not v5:
        raise ProtocolViolation("an MQTT 3.1.1 broker sent DISCONNECT")
    if not body:
        return Reason(0), ""
    props = properties(body, 1) if len(body) > 1 else {}
    text = props.get(REASON_STRING)
    return Reason(body[0]), text if isinstance(text, str) else ""


_BYTE = frozenset({0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A})
_TWO = frozenset({0x13, 0x21, 0x22, 0x23})
_FOUR = frozenset({0x02, 0x11, 0x18, 0x27})
_TEXT = frozenset({0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F})
_BINARY = frozenset({0x09, 0x16})
_PAIR = 0x26
_VARINT = 0x0B


def properties(body: bytes, at: int) -> dict[int, object]:
    """MQTT 5 properties starting at ``body[at]`` (their length first). User
    properties are kept as a list of pairs under 0x26."""
    length, at = read_varint(body, at)
    end = at + length
    if end > len(body):
        raise ProtocolViolation("malformed properties: longer than the packet")
    out: dict[int, object] = {}
    while at < end:
        key = body[at]
        at += 1
        width = 1 if key in _BYTE else 2 if key in _TWO else 4 if key in _FOUR else 0
        if width:
            # Checked here: a slice past the end would give a short value, an index an IndexError.
            if at + width > end:
                raise ProtocolViolation("malformed properties: a value runs past their end")
            value: object = int.from_bytes(body[at : at + width], "big")
            at += width
        elif key == _VARINT:
            value, at = read_varint(body, at)
        elif key in _TEXT or key in _BINARY:
            data, at = _read_field(body, at)
            value = data.decode(errors="replace") if key in _TEXT else data
        elif key == _PAIR:
            name, at = _read_field(body, at)
            text, at = _read_field(body, at)
            pairs = out.setdefault(_PAIR, [])
            assert isinstance(pairs, list)
            pairs.append((name.decode(errors="replace"), text.decode(errors="replace")))
            continue
        else:
            raise ProtocolViolation(f"malformed properties: unknown property 0x{key:02X}")
        out[key] = value
    if at != end:
        raise ProtocolViolation("malformed properties: a value runs past their end")
    return out


def varint_at(data: bytes, at: int) -> tuple[int, int]:
    """The variable byte integer at ``data[at]`` and where what follows it starts, or
    ``(0, -1)`` while its bytes are not all here yet (a packet arriving in pieces)."""
    value = shift = 0
    for _ in range(4):
        if at >= len(data):
            return 0, -1
        digit = data[at]
        at += 1
        value |= (digit & 0x7F) << shift
        if digit < 0x80:
            return value, at
        shift += 7
    raise ProtocolViolation("malformed packet: a variable byte integer over 4 bytes")


def read_varint(body: bytes, at: int) -> tuple[int, int]:
    """``varint_at`` inside a whole packet, where cut off is malformed."""
    value, after = varint_at(body, at)
    if after < 0:
        raise ProtocolViolation("malformed variable byte integer")
    return value, after


def _read_field(body: bytes, at: int) -> tuple[bytes, int]:
    if at + 2 > len(body):
        raise ProtocolViolation("malformed properties: a string runs past the packet")
    length = int.from_bytes(body[at : at + 2], "big")
    end = at + 2 + length
    if end > len(body):
        raise ProtocolViolation("malformed properties: a string runs past the packet")
    return body[at + 2 : end], end
