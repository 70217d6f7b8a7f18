"""Reading segments for ``take``: the undelivered events of a class after a cursor,
and the segments decoded last, kept (the table itself: ``tidegate.outbox.segment_store``).

A segment is split and checked once, in C loops (``map`` over slices and
``zlib.crc32``), and handed out as slices of its columns: a Python step per event
here was a third of a backlog's drain (``./dev bench backlog_drain``)."""

from __future__ import annotations

import sqlite3
import zlib
from array import array
from typing import NamedTuple

from tidegate.outbox.schema import SEGMENT_TABLES
from tidegate.outbox.segment import Segment, SegmentDamaged
from tidegate.outbox.segment_store import LAST_ID, SELECT, Stored, as_stored, read


class Split(NamedTuple):
    """A decoded segment as columns: event ``i`` is ``payloads[i]`` on ``routes[i]``."""

    routes: list[int]
    payloads: list[bytes]
    crcs: list[int]
    """As stored (signed, ``tidegate.outbox.integrity.checksum``)."""
    mismatched: frozenset[int]
    """Events whose payload fails its stored checksum."""


def split(segment: Segment) -> Split:
    ends = segment.ends.tolist()
    payloads = list(map(segment.body.__getitem__, map(slice, [0, *ends[:-1]], ends)))
    # The stored checksums read as unsigned compare with zlib's in one C comparison.
    stored = array("I", segment.crcs.tobytes()).tolist()
    computed = list(map(zlib.crc32, payloads))
    mismatched = (
        frozenset()
        if computed == stored
        else frozenset(i for i, (a, b) in enumerate(zip(computed, stored, strict=True)) if a != b)
    )
    return Split(segment.routes.tolist(), payloads, segment.crcs.tolist(), mismatched)


class Decoded:
    """The segments ``take`` decoded last, kept: a backlog sent a few events at a time
    would decompress the same segment again for every few events. A stored segment
    never changes, and its id is never another segment's (ids only grow)."""

    def __init__(self, keep: int = 2) -> None:
        self._kept: dict[tuple[int, int, int, int], Split] = {}
        self._keep = keep

    def get(self, db: sqlite3.Connection, cls: int, seg: Stored) -> Split:
        key = (cls, seg.id, seg.last_id, seg.size)
        decoded = self._kept.get(key)
        if decoded is None:
            decoded = split(read(db, cls, seg.id))
            if len(self._kept) >= self._keep:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = decoded
        return decoded

    def clear(self) -> None:
        self._kept.clear()


class Chunk(NamedTuple):
    """Events ``start`` to ``stop - 1`` (indices) of the segment whose first id is ``id``."""

    id: int
    events: Split
    start: int
    stop: int


class Events(NamedTuple):
    """Undelivered events read from segments, and segments that failed their checks."""

    chunks: list[Chunk]
    """In id order."""
    damaged: list[tuple[Stored, str]]

    def __len__(self) -> int:
        return sum(c.stop - c.start for c in self.chunks)

    def last_id(self) -> int | None:
        return self.chunks[-1].id + self.chunks[-1].stop - 1 if self.chunks else None

    def rows(self) -> list[tuple[int, int, bytes, int]]:
        """(id, route id, payload, crc) per event, in id order."""
        out: list[tuple[int, int, bytes, int]] = []
        for c in self.chunks:
            e, a, b = c.events, c.start, c.stop
            out += zip(
                range(c.id + a, c.id + b), e.routes[a:b], e.payloads[a:b], e.crcs[a:b], strict=True
            )
        return out


def read_after(
    db: sqlite3.Connection, cls: int, after: int, want: int, decoded_last: Decoded
) -> Events:
    """Up to ``want`` undelivered events of the class with ids above ``after``."""
    table = SEGMENT_TABLES[cls]
    chunks: list[Chunk] = []
    damaged: list[tuple[Stored, str]] = []
    sql = (
        SELECT.format(table=table)  # noqa: S608 - constant names
        + f"WHERE s.id >= COALESCE((SELECT MAX(id) FROM {table} WHERE id <= ?), 0) "  # noqa: S608
        f"AND {LAST_ID} > ? ORDER BY s.id LIMIT ?"
    )
    got = 0
    while got < want:
        found = as_stored(db.execute(sql, (after, after, 8)).fetchall())
        for seg in found:
            try:
                decoded = decoded_last.get(db, cls, seg)
            except SegmentDamaged as exc:
                damaged.append((seg, str(exc)))
                continue
            a = max(seg.first, after + 1) - seg.id
            b = min(len(decoded.payloads), a + want - got)
            if b > a:
                chunks.append(Chunk(seg.id, decoded, a, b))
                got += b - a
            if got >= want:
                break
        if len(found) < 8:
            break
        after = found[-1].last_id
    return Events(chunks, damaged)
