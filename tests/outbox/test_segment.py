"""The segment encoding (``tidegate.outbox.segment``): what goes in comes out, and
damage is told apart: the whole segment's, or one event's."""

from __future__ import annotations

import struct
import zlib

import pytest

from tidegate.outbox.integrity import checksum
from tidegate.outbox.segment import Segment, SegmentDamaged, decode, encode

PAYLOADS = [b'{"v":1}', b"", '{"name":"t\u00e9mp"}'.encode(), b"x" * 5000]


def test_every_payload_route_and_source_comes_back_in_order() -> None:
    blob = encode(PAYLOADS, [3, 1, 4, 1], [5, 9, 2, 6])
    seg = decode(blob)
    assert len(seg) == 4
    assert [seg.payload(i) for i in range(4)] == PAYLOADS
    assert list(seg.routes) == [3, 1, 4, 1]
    assert list(seg.sources) == [5, 9, 2, 6]
    assert all(seg.intact(i) for i in range(4))


def test_an_empty_segment_decodes_to_no_events() -> None:
    assert len(decode(encode([], [], []))) == 0


def test_sensor_json_is_stored_in_a_fraction_of_its_size() -> None:
    payloads = [
        b'{"id":"01a23784-09f7-7056-9f2b-%012x","gateway":"gw","source":"meter",'
        b'"name":"power","value":%d.5,"time":"2026-12-02T16:08:%02d.911592Z","seq":%d}'
        % (i * 7919, 1000 + i, i % 60, i)
        for i in range(50)
    ]
    blob = encode(payloads, [1] * 50, [1] * 50)
    assert len(blob) < sum(map(len, payloads)) / 3


@pytest.mark.parametrize("at", [0, 5, -5, -1])
def test_any_damaged_byte_makes_the_segment_damaged(at: int) -> None:
    blob = bytearray(encode(PAYLOADS, [1] * 4, [1] * 4))
    blob[at] ^= 0x40
    with pytest.raises(SegmentDamaged, match="checksum mismatch"):
        decode(bytes(blob))


def test_a_cut_segment_is_damaged() -> None:
    blob = encode(PAYLOADS, [1] * 4, [1] * 4)
    with pytest.raises(SegmentDamaged):
        decode(blob[:3])
    with pytest.raises(SegmentDamaged):
        decode(blob[: len(blob) // 2])


def _sealed(raw: bytes) -> bytes:
    """Contents with a valid trailing checksum: what a bug, not the disk, could write."""
    compressed = zlib.compress(raw)
    return compressed + struct.pack("<I", zlib.crc32(compressed))


def test_contents_that_do_not_add_up_are_damaged_even_with_a_good_checksum() -> None:
    with pytest.raises(SegmentDamaged, match="header"):
        decode(_sealed(b"XXXX" + struct.pack("<I", 0)))
    with pytest.raises(SegmentDamaged, match="header"):
        decode(_sealed(b"TGS1" + struct.pack("<I", 3) + b"\0" * 8))
    # one event claiming 10 bytes of payload where there are 4
    head = b"TGS1" + struct.pack("<IIIIi", 1, 1, 1, 10, 0)
    with pytest.raises(SegmentDamaged, match="offsets"):
        decode(_sealed(head + b"abcd"))
    with pytest.raises(SegmentDamaged, match="offsets"):
        decode(_sealed(b"TGS1" + struct.pack("<I", 0) + b"stray"))
    with pytest.raises(SegmentDamaged, match="decompress"):
        decode(b"not zlib" + struct.pack("<I", zlib.crc32(b"not zlib")))


def test_an_event_whose_payload_fails_its_crc_is_damaged_alone() -> None:
    seg = decode(encode(PAYLOADS[:2], [1, 1], [1, 1]))
    damaged = Segment(seg.routes, seg.sources, seg.ends, seg.crcs, b'{"v":2}')
    assert not damaged.intact(0)
    assert damaged.intact(1)  # the empty payload
    assert damaged.crcs[0] == checksum(PAYLOADS[0])


def test_one_route_and_one_source_per_payload() -> None:
    with pytest.raises(ValueError, match="one route, source and checksum"):
        encode([b"a", b"b"], [1], [1, 1])
    with pytest.raises(ValueError, match="one route, source and checksum"):
        encode([b"a", b"b"], [1, 1], [1, 1], crcs=[0])
