"""A segment: the events one commit stored for one priority class, as one blob.

The outbox stores what a commit accepted this way (``tidegate.outbox.segment_store``:
one row per commit and class instead of one row per event, a fifth of the bytes on
disk, one insert and one delete instead of one per event; ``bench/segment_floor.py``
measures SQLite's part against a row per event).

The blob is ``zlib`` (level 1: 4-5x smaller on sensor JSON from 20 events up,
~1 µs per event; ~1.5-2 µs with the CRCs and arrays) of a header, four arrays
and the payloads end to end, followed by the CRC32 of the compressed bytes::

    b"TGS1"  count (uint32)
    route id, source id, end offset (uint32 each, per event)
    crc (int32 per event: ``tidegate.outbox.integrity.checksum`` of the payload)
    payloads, concatenated
    -- compressed, then: crc32 of the compressed bytes (uint32)

The trailing CRC tells a damaged segment from a damaged event before anything is
decompressed: a segment that fails it, or that does not decompress to a
consistent header and arrays, raises ``SegmentDamaged``; an event whose payload
fails its own CRC is damaged alone (``Segment.intact``). Integers are
little-endian whatever the machine.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from tidegate.errors import BufferError_
from tidegate.outbox.integrity import checksum

MAGIC = b"TGS1"
_HEADER = struct.Struct("<4sI")
_TRAILER = struct.Struct("<I")
LEVEL = 1
"""zlib level: level 6 saves 10-15 % more bytes for 1.5-2.6x the CPU (measured on sensor
JSON in commits of 50 and 1,000 events)."""


class SegmentDamaged(BufferError_):
    """A stored segment fails its checksum or does not decode."""


def _little(values: array[int]) -> bytes:
    if sys.byteorder != "little":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _array(typecode: str, data: bytes) -> array[int]:
    values = array(typecode, data)
    if sys.byteorder != "little":
        values.byteswap()
    return values


def encode(
    payloads: Sequence[bytes],
    routes: Sequence[int],
    sources: Sequence[int],
    *,
    crcs: Sequence[int] | None = None,
) -> bytes:
    """The blob of a segment holding ``payloads`` (with their route and source ids, and
    their checksums: computed here unless given, as a rewrite keeps a damaged one's)."""
    if not len(payloads) == len(routes) == len(sources) == len(crcs or payloads):
        raise ValueError("a segment needs one route, source and checksum per payload")
    ends = array("I")
    end = 0
    for payload in payloads:
        end += len(payload)
        ends.append(end)
    parts = [
        _HEADER.pack(MAGIC, len(payloads)),
        _little(array("I", routes)),
        _little(array("I", sources)),
        _little(ends),
        _little(array("i", [checksum(p) for p in payloads] if crcs is None else crcs)),
        *payloads,
    ]
    compressed = zlib.compress(b"".join(parts), LEVEL)
    return compressed + _TRAILER.pack(zlib.crc32(compressed))


@dataclass(frozen=True, slots=True)
class Segment:
    """A decoded segment: event ``i`` is ``payload(i)``, sent on ``routes[i]``."""

    routes: array[int]
    sources: array[int]
    ends: array[int]
    crcs: array[int]
    body: bytes

    def __len__(self) -> int:
        return len(self.ends)

    def payload(self, i: int) -> bytes:
        return self.body[self.ends[i - 1] if i else 0 : self.ends[i]]

    def intact(self, i: int) -> bool:
        """Whether event ``i``'s payload still has the CRC it was stored with."""
        return checksum(self.payload(i)) == self.crcs[i]


def decode(blob: bytes) -> Segment:
    """The segment in ``blob``; SegmentDamaged if it is not one, intact."""
    if len(blob) < _TRAILER.size:
        raise SegmentDamaged("segment shorter than its checksum")
    compressed, (crc,) = blob[: -_TRAILER.size], _TRAILER.unpack(blob[-_TRAILER.size :])
    if zlib.crc32(compressed) != crc:
        raise SegmentDamaged("segment checksum mismatch (stored segment damaged)")
    try:
        raw = zlib.decompress(compressed)
    except zlib.error as exc:
        raise SegmentDamaged(f"segment does not decompress: {exc}") from None
    if len(raw) < _HEADER.size:
        raise SegmentDamaged("segment shorter than its header")
    magic, count = _HEADER.unpack_from(raw)
    at = _HEADER.size
    if magic != MAGIC or len(raw) < at + 16 * count:
        raise SegmentDamaged("segment header does not match its contents")
    columns = []
    for typecode in "IIIi":
        columns.append(_array(typecode, raw[at : at + 4 * count]))
        at += 4 * count
    routes, sources, ends, crcs = columns
    body = raw[at:]
    offsets = ends.tolist()
    # Non-decreasing, checked in C (sorting a sorted list is one pass): a generator
    # over the offsets was ~7 % of a backlog's drain.
    if offsets != sorted(offsets) or (offsets[-1] if count else 0) != len(body):
        raise SegmentDamaged("segment offsets do not match its payloads")
    return Segment(routes, sources, ends, crcs, body)
