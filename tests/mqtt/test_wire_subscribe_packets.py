"""The subscribing side of the wire codec, without I/O: SUBSCRIBE, SUBACK and CONNECT for
a persistent session. What Mosquitto makes of them is checked in ``test_wire_subscriber``;
an incoming PUBLISH, decoded inline by the subscriber, in ``test_wire_subscriber_parse``."""

from __future__ import annotations

import pytest

from tidegate.mqtt.wire import Reason, packets
from tidegate.mqtt.wire.packets import Packet, ProtocolViolation, frames

MAX_REMAINING = 268_435_455
"""The largest remaining length MQTT can express."""

# -- SUBSCRIBE --------------------------------------------------------------------------------


def test_subscribe_in_311_lists_each_filter_with_its_qos() -> None:
    data = packets.subscribe(0x0102, [("tele/+/SENSOR", 1), ("a/#", 0)], v5=False)
    (packet,), rest = frames(data)
    # The fixed header's flags must be 0b0010 (MQTT-3.8.1-1).
    assert (packet.kind, packet.flags, rest) == (8, 2, b"")
    assert packet.body == b"\x01\x02" + b"\x00\x0dtele/+/SENSOR\x01" + b"\x00\x03a/#\x00"


def test_subscribe_in_5_has_empty_properties_and_the_qos_as_options() -> None:
    data = packets.subscribe(7, [("x/y", 1)], v5=True)
    (packet,), _ = frames(data)
    # Options byte: QoS 1, No Local off, Retain As Published off, Retain Handling 0.
    assert packet.body == b"\x00\x07" + b"\x00" + b"\x00\x03x/y\x01"


def test_a_long_subscribe_has_a_multi_byte_length() -> None:
    filters = [(f"sensors/{i:04d}/#", 1) for i in range(20)]
    data = packets.subscribe(1, filters, v5=False)
    assert data[1] & 0x80  # over 127 bytes
    (packet,), _ = frames(data)
    assert packet.body.count(b"sensors/") == 20


# -- SUBACK -------------------------------------------------------------------------------------


def test_suback_311_granted_qos_and_a_refusal() -> None:
    assert packets.suback_of(b"\x00\x05\x01\x00\x80", v5=False) == (
        5,
        [Reason(1), Reason(0), Reason(0x80)],
    )
    assert Reason(0x80).is_failure and not Reason(1).is_failure


def test_suback_5_skips_its_properties() -> None:
    reason_string = b"\x1f\x00\x06denied"
    body = b"\x12\x34" + bytes([len(reason_string)]) + reason_string + b"\x01\x87"
    assert packets.suback_of(body, v5=True) == (0x1234, [Reason(1), Reason(0x87)])
    assert str(Reason(0x87)) == "Not authorized"


@pytest.mark.parametrize(("body", "v5"), [(b"\x00\x01", False), (b"\x00\x01\x00", True)])
def test_a_suback_without_reason_codes_is_malformed(body: bytes, v5: bool) -> None:
    with pytest.raises(ProtocolViolation, match="SUBACK"):
        packets.suback_of(body, v5)


# -- CONNECT for a subscriber -------------------------------------------------------------------


def test_a_persistent_311_connect_has_clean_session_off_and_no_will() -> None:
    data = packets.connect(
        client_id="sub",
        v5=False,
        keepalive=30,
        username=None,
        password=None,
        will_topic=None,
        clean=False,
    )
    (packet,), _ = frames(data)
    assert packet.body == b"\x00\x04MQTT\x04\x00\x00\x1e\x00\x03sub"


def test_a_persistent_5_connect_asks_for_a_session_expiry() -> None:
    data = packets.connect(
        client_id="sub",
        v5=True,
        keepalive=30,
        username="u",
        password=b"p",
        will_topic=None,
        clean=False,
        session_expiry=86400,
    )
    (packet,), _ = frames(data)
    expiry = b"\x05\x11" + (86400).to_bytes(4, "big")
    assert packet.body == (
        b"\x00\x04MQTT\x05\xc0\x00\x1e" + expiry + b"\x00\x03sub" + b"\x00\x01u\x00\x01p"
    )


def test_a_clean_5_connect_without_a_will_has_no_properties() -> None:
    data = packets.connect(
        client_id="c", v5=True, keepalive=5, username=None, password=None, will_topic=None
    )
    assert frames(data)[0][0].body == b"\x00\x04MQTT\x05\x02\x00\x05\x00\x00\x01c"


# -- framing limits ----------------------------------------------------------------------------


def test_frames_takes_a_larger_limit_for_a_subscriber() -> None:
    body = b"\x00\x01t" + bytes(packets.MAX_INCOMING + 1)
    data = b"\x30" + packets.varint(len(body)) + body
    with pytest.raises(ProtocolViolation, match="bytes"):
        frames(data)
    assert frames(data, limit=MAX_REMAINING) == ([Packet(3, 0, body)], b"")
