"""Segments in the outbox file: the SQL around them (layout: ``tidegate.outbox.schema``;
encoding: ``tidegate.outbox.segment``).

A commit stores the events of one priority class as one segment holding the ids
``id..last_id``, every one of them. A segment is acknowledged by its prefix (a
``segment_positions`` row says how far: delivered, or dropped by a full outbox) and
deleted whole once its last event is delivered, dropped or expired; a clock
correction rewrites it in place. Whatever must treat an event on its own (a dead
letter, an acknowledgement out of order) first *unpacks* the segment: its
undelivered events become rows of the class table, with the same ids, route,
source, time and checksum, in the same transaction. Everything that works on rows
then works as it did.

The gateway's connection records deleted ids for the ledger through TEMP triggers
(``tidegate.outbox.ledger.undelivered``); unpacking is not a deletion, so it takes
its own record back (``tracked``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

from tidegate.outbox.schema import CLASS_TABLES, POSITIONS, SEGMENT_TABLES
from tidegate.outbox.segment import Segment, SegmentDamaged, decode, encode

GONE = "tidegate_gone"
"""The TEMP table of ids deleted on the gateway's connection (cls, low, high)."""

Ranges = list[tuple[int, int]]

LAST_ID = "IIF(typeof(s.last_id) = 'integer' AND s.last_id >= s.id, s.last_id, s.id)"
"""A segment's last id as SQL (``s``: its table), read type-checked: a damaged header
byte can make a stored value another type (a non-UTF-8 text, a real). A value that is
not a sane id counts as one event; the segment then fails its checks (its count) and
goes to the dead letters whole."""
SIZE = "IIF(typeof(s.size) = 'integer' AND s.size >= 0, s.size, 0)"
UPTO = "IIF(typeof(p.upto) = 'integer', p.upto, NULL)"

SELECT = (
    f"SELECT s.id, {LAST_ID}, {SIZE}, {UPTO} FROM {{table}} s "  # noqa: S608 - constants
    "LEFT JOIN segment_positions p ON p.id = s.id "
)
"""A ``Stored``'s columns (``as_stored``) from segment table ``{table}``, type-checked."""


class Stored(NamedTuple):
    """A segment's place and how much of it is undelivered."""

    id: int
    last_id: int
    size: int
    """All its payloads' bytes (delivered ones included)."""
    upto: int | None
    """Its events up to here are delivered (None: none is)."""

    @property
    def first(self) -> int:
        """The first undelivered event's id."""
        return self.id if self.upto is None else self.upto + 1

    @property
    def events(self) -> int:
        return self.last_id - self.first + 1


def insert(
    db: sqlite3.Connection,
    cls: int,
    first_id: int,
    payloads: Sequence[bytes],
    *,
    routes: Sequence[int],
    sources: Sequence[int],
    accepted: float,
    synced: bool,
    boot: int,
) -> None:
    """Store ``payloads`` (ids ``first_id`` on) as one segment of class ``cls``."""
    db.execute(
        f"INSERT INTO {SEGMENT_TABLES[cls]} "  # noqa: S608 - constant names
        "(id, last_id, accepted, synced, boot_id, size, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            first_id,
            first_id + len(payloads) - 1,
            accepted,
            int(synced),
            boot,
            sum(map(len, payloads)),
            encode(payloads, routes, sources),
        ),
    )


def of_boot(db: sqlite3.Connection, cls: int, boot: int) -> list[Stored]:
    """The class's segments committed in boot ``boot``."""
    return as_stored(
        db.execute(
            SELECT.format(table=SEGMENT_TABLES[cls]) + "WHERE s.boot_id = ? ORDER BY s.id",
            (boot,),
        ).fetchall()
    )


def rewrite(
    db: sqlite3.Connection,
    cls: int,
    seg_id: int,
    payloads: Sequence[bytes],
    was: Segment,
    *,
    crcs: Sequence[int],
    shift: float,
) -> None:
    """Inside a write: the segment with new payloads (same ids, routes, sources; the
    checksums given), its acceptance time moved by ``shift`` and counted as synced."""
    db.execute(
        f"UPDATE {SEGMENT_TABLES[cls]} SET body = ?, size = ?, "  # noqa: S608
        "accepted = accepted + ?, synced = 1 WHERE id = ?",
        (
            encode(payloads, was.routes, was.sources, crcs=crcs),
            sum(map(len, payloads)),
            shift,
            seg_id,
        ),
    )


def as_stored(rows: Sequence[tuple[int, int, int, int | None]]) -> list[Stored]:
    """Rows of ``SELECT`` as ``Stored``."""
    # A position outside the segment (a damaged value) says nothing: none delivered.
    return [
        Stored(i, last, size, upto if upto is None or i - 1 <= upto < last else None)
        for i, last, size, upto in rows
    ]


def overlapping(db: sqlite3.Connection, cls: int, low: int, high: int) -> list[Stored]:
    """The segments of the class with an undelivered event in ``low..high``, in order."""
    table = SEGMENT_TABLES[cls]
    rows = db.execute(
        SELECT.format(table=table)  # noqa: S608 - constant names
        + f"WHERE s.id >= COALESCE((SELECT MAX(id) FROM {table} WHERE id <= ?), 0) "  # noqa: S608
        f"AND s.id <= ? AND {LAST_ID} >= ? ORDER BY s.id",
        (low, high, low),
    ).fetchall()
    return [s for s in as_stored(rows) if s.first <= high and s.last_id >= low]


def first(db: sqlite3.Connection, cls: int) -> Stored | None:
    """The class's oldest segment."""
    row = db.execute(SELECT.format(table=SEGMENT_TABLES[cls]) + "ORDER BY s.id LIMIT 1").fetchone()
    return None if row is None else Stored(*row)


def every(db: sqlite3.Connection, cls: int) -> list[Stored]:
    return as_stored(
        db.execute(SELECT.format(table=SEGMENT_TABLES[cls]) + "ORDER BY s.id").fetchall()
    )


def _stored_body(db: sqlite3.Connection, cls: int, seg_id: int) -> tuple[object, bytes]:
    """(last_id as stored, body) of a segment."""
    row = db.execute(
        f"SELECT {LAST_ID}, CAST(body AS BLOB) FROM {SEGMENT_TABLES[cls]} s WHERE id = ?",  # noqa: S608
        (seg_id,),
    ).fetchone()
    if row is None:
        raise SegmentDamaged(f"no segment {seg_id} in the outbox")
    return row[0], b"" if row[1] is None else bytes(row[1])


def body(db: sqlite3.Connection, cls: int, seg_id: int) -> bytes:
    """A segment's bytes as stored."""
    return _stored_body(db, cls, seg_id)[1]


def read(db: sqlite3.Connection, cls: int, seg_id: int) -> Segment:
    """The segment, decoded; SegmentDamaged if it fails its checks (its own, or it does
    not hold one event per id of its range)."""
    last_id, blob = _stored_body(db, cls, seg_id)
    decoded = decode(blob)
    if not isinstance(last_id, int) or len(decoded) != last_id - seg_id + 1:
        raise SegmentDamaged("segment holds another number of events than its ids say")
    return decoded


def undelivered_size(db: sqlite3.Connection, cls: int, seg: Stored) -> int:
    """The payload bytes of the segment's undelivered events (reads a partly
    delivered one; a damaged one counts whole)."""
    if seg.upto is None:
        return seg.size
    try:
        decoded = read(db, cls, seg.id)
    except SegmentDamaged:  # its share, as _prefix_size counted the delivered part
        return seg.size * seg.events // (seg.last_id - seg.id + 1)
    done = seg.upto - seg.id + 1
    return seg.size - (decoded.ends[done - 1] if done else 0)


def deliver(
    db: sqlite3.Connection, cls: int, ranges: Ranges, *, sized: bool, tracked: bool
) -> tuple[int, int]:
    """Inside a write: the class's segment events in ``ranges`` are delivered. Whole
    segments go, a delivered prefix moves its position, anything else is unpacked
    into rows (for the caller's delete of rows). Returns (events, payload bytes;
    the bytes only if ``sized``)."""
    events = size = 0
    for low, high in ranges:
        for seg in overlapping(db, cls, low, high):
            if low <= seg.first and high >= seg.last_id:
                if sized:
                    size += undelivered_size(db, cls, seg)
                events += seg.events
                delete(db, cls, seg.id)
            elif low <= seg.first:  # a prefix: first..high
                if sized:
                    size += _prefix_size(db, cls, seg, high)
                events += high - seg.first + 1
                advance(db, cls, seg.id, high)
            else:
                try:
                    unpack(db, cls, seg, tracked=tracked)
                except SegmentDamaged:
                    # Sent from memory before its segment was damaged on disk: its
                    # events go to the dead letters whole at the next take (counted
                    # as damaged, though some were delivered).
                    continue
    return events, size


def advance(db: sqlite3.Connection, cls: int, seg_id: int, upto: int) -> None:
    """The segment's events up to ``upto`` are gone (delivered, or dropped)."""
    db.execute(
        "INSERT INTO segment_positions (id, cls, upto) VALUES (?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET upto = excluded.upto",
        (seg_id, cls, upto),
    )


def _prefix_size(db: sqlite3.Connection, cls: int, seg: Stored, high: int) -> int:
    """The payload bytes of the segment's undelivered events up to ``high`` (a damaged
    segment: its share of the size)."""
    try:
        ends = read(db, cls, seg.id).ends
    except SegmentDamaged:
        return seg.size * (high - seg.first + 1) // (seg.last_id - seg.id + 1)
    start = seg.first - seg.id
    return ends[high - seg.id] - (ends[start - 1] if start else 0)


def delete(db: sqlite3.Connection, cls: int, seg_id: int) -> None:
    """Delete a segment (its position after it: the ledger's trigger reads it)."""
    db.execute(f"DELETE FROM {SEGMENT_TABLES[cls]} WHERE id = ?", (seg_id,))  # noqa: S608
    db.execute(f"DELETE FROM {POSITIONS} WHERE id = ?", (seg_id,))  # noqa: S608


def unpack(db: sqlite3.Connection, cls: int, seg: Stored, *, tracked: bool) -> int:
    """Inside a write: the segment's undelivered events become rows of the class
    table (same ids, route, source, time, checksum). Returns how many. Raises
    SegmentDamaged (leaving it as it is) if it fails its checks."""
    table = SEGMENT_TABLES[cls]
    accepted, synced, boot = db.execute(
        f"SELECT accepted, synced, boot_id FROM {table} WHERE id = ?",  # noqa: S608
        (seg.id,),
    ).fetchone()
    decoded = read(db, cls, seg.id)
    start = seg.first - seg.id
    db.executemany(
        f"INSERT INTO {CLASS_TABLES[cls]} "  # noqa: S608 - constant names
        "(id, source_id, route_id, accepted, synced, boot_id, payload, crc) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                seg.id + i,
                decoded.sources[i],
                decoded.routes[i],
                accepted,
                synced,
                boot,
                decoded.payload(i),
                decoded.crcs[i],
            )
            for i in range(start, len(decoded))
        ],
    )
    delete(db, cls, seg.id)
    if tracked:  # not a deletion: the events are rows now
        db.execute(
            f"DELETE FROM temp.{GONE} WHERE cls = ? AND low = ? AND high = ?",  # noqa: S608
            (cls, seg.first, seg.last_id),
        )
    return len(decoded) - start


def unpack_containing(db: sqlite3.Connection, ids: Sequence[int], *, tracked: bool) -> None:
    """Inside a write: unpack every segment holding one of ``ids`` (undelivered)."""
    for row_id in sorted(set(ids)):
        for cls in range(len(SEGMENT_TABLES)):
            for seg in overlapping(db, cls, row_id, row_id):
                # A damaged one was never handed out: take dead-letters it whole.
                with contextlib.suppress(SegmentDamaged):
                    unpack(db, cls, seg, tracked=tracked)


def unpack_all(db: sqlite3.Connection, *, tracked: bool) -> int:
    """Inside a write: unpack every segment that passes its checks (for tests and
    tools that work on rows). Returns how many events became rows."""
    n = 0
    for cls in range(len(SEGMENT_TABLES)):
        for seg in every(db, cls):
            try:
                n += unpack(db, cls, seg, tracked=tracked)
            except SegmentDamaged:
                continue  # left whole: take dead-letters it
    return n


def totals(db: sqlite3.Connection, cls: int) -> tuple[int, int, int]:
    """(undelivered events, their payload bytes, the highest id) of the class's segments."""
    table = SEGMENT_TABLES[cls]
    n, size, top = db.execute(
        f"SELECT COALESCE(SUM({LAST_ID} - s.id + 1), 0), COALESCE(SUM({SIZE}), 0), "  # noqa: S608
        f"COALESCE(MAX({LAST_ID}), 0) FROM {table} s"
    ).fetchone()
    partly = db.execute(SELECT.format(table=table) + "WHERE p.upto IS NOT NULL").fetchall()
    for seg in as_stored(partly):  # less their delivered prefixes
        n -= seg.first - seg.id
        size -= seg.size - undelivered_size(db, cls, seg)
    return int(n), int(size), int(top)


def top_id(db: sqlite3.Connection) -> int:
    """The highest event id any segment holds (0: none)."""
    return max(
        int(db.execute(f"SELECT COALESCE(MAX({LAST_ID}), 0) FROM {t} s").fetchone()[0])  # noqa: S608
        for t in SEGMENT_TABLES
    )
