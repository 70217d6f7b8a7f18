"""Reading segments for ``take``: the undelivered events of a class after a cursor,
and the segments decoded last, kept (the table itself: ``tidegate.outbox.segment_store``)."""

from __future__ import annotations

import itertools
import sqlite3
from typing import NamedTuple

from tidegate.outbox.schema import SEGMENT_TABLES
from tidegate.outbox.segment import Segment, SegmentDamaged
from tidegate.outbox.segment_store import LAST_ID, SELECT, Stored, as_stored, read


class Decoded:
    """The segments ``take`` decoded last, kept: a backlog sent a few events at a time
    would decompress the same segment again for every few events. A stored segment
    never changes, and its id is never another segment's (ids only grow)."""

    def __init__(self, keep: int = 2) -> None:
        self._kept: dict[tuple[int, int, int, int], Segment] = {}
        self._keep = keep

    def get(self, db: sqlite3.Connection, cls: int, seg: Stored) -> Segment:
        key = (cls, seg.id, seg.last_id, seg.size)
        decoded = self._kept.get(key)
        if decoded is None:
            decoded = read(db, cls, seg.id)
            if len(self._kept) >= self._keep:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = decoded
        return decoded

    def clear(self) -> None:
        self._kept.clear()


class Events(NamedTuple):
    """Undelivered events read from segments, and segments that failed their checks."""

    rows: list[tuple[int, int, bytes, int]]
    """(id, route id, payload, crc), in id order."""
    damaged: list[tuple[Stored, str]]


def read_after(
    db: sqlite3.Connection, cls: int, after: int, want: int, decoded_last: Decoded
) -> Events:
    """Up to ``want`` undelivered events of the class with ids above ``after``."""
    table = SEGMENT_TABLES[cls]
    out: list[tuple[int, int, bytes, int]] = []
    damaged: list[tuple[Stored, str]] = []
    sql = (
        SELECT.format(table=table)  # noqa: S608 - constant names
        + f"WHERE s.id >= COALESCE((SELECT MAX(id) FROM {table} WHERE id <= ?), 0) "  # noqa: S608
        f"AND {LAST_ID} > ? ORDER BY s.id LIMIT ?"
    )
    while len(out) < want:
        found = as_stored(db.execute(sql, (after, after, 8)).fetchall())
        for seg in found:
            start = max(seg.first, after + 1)
            try:
                decoded = decoded_last.get(db, cls, seg)
            except SegmentDamaged as exc:
                damaged.append((seg, str(exc)))
                continue
            a = start - seg.id
            b = min(len(decoded), a + want - len(out))
            ends, body = decoded.ends, decoded.body
            begins = itertools.chain((ends[a - 1] if a else 0,), ends[a : b - 1])
            out += zip(
                range(seg.id + a, seg.id + b),
                decoded.routes[a:b],
                [body[x:y] for x, y in zip(begins, ends[a:b], strict=False)],
                decoded.crcs[a:b],
                strict=True,
            )
            if len(out) >= want:
                break
        if len(found) < 8:
            break
        after = found[-1].last_id
    return Events(out, damaged)
