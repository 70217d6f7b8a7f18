"""``tidegate buffer peek`` and ``export``: undelivered events in acceptance order
and dead letters, streamed from the file (inside the caller's ``snapshot``).

A class's undelivered events are its rows and its segments' undelivered events
(``tidegate.outbox.segment_store``), merged by id. A segment that fails its checks
(``SegmentDamaged``) is listed as one entry: its first undelivered id, no source or
route, the stored blob as payload (the gateway dead-letters it whole); a source
filter leaves it out (its sources are unknown).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from sqlite_utils import Database

from tidegate.outbox.admin.access import has_segments
from tidegate.outbox.schema import CLASS_TABLES, POSITIONS, SEGMENT_TABLES
from tidegate.outbox.segment import Segment, SegmentDamaged, decode
from tidegate.outbox.segment_store import LAST_ID, SIZE, UPTO, Stored
from tidegate.priority import PRIORITIES


@dataclass(frozen=True, slots=True)
class Entry:
    """An undelivered event in the outbox."""

    id: int
    priority: str
    source: str | None
    topic: str | None
    qos: int | None
    retain: bool | None
    accepted: float | None
    """None if the stored time is not a number (a damaged row)."""
    synced: bool
    payload: bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    at: float
    stage: str
    reason: str
    source: str | None
    topic: str | None
    payload: bytes | None
    crc: object = None
    """The CRC the event was stored with (an int; None for raw input; bytes or a float
    if the stored row was damaged): what a replay puts back."""


class Packed(NamedTuple):
    """A stored segment with undelivered events, as the file has it."""

    stored: Stored
    accepted: float | None
    """None if the stored time is not a number (a damaged row)."""
    synced: bool
    blob: bytes

    def decode(self) -> Segment:
        """The segment; SegmentDamaged if it fails its checks or does not hold the
        events its row says."""
        decoded = decode(self.blob)
        if len(decoded) != self.stored.last_id - self.stored.id + 1:
            raise SegmentDamaged("segment holds another number of events than its ids")
        return decoded


def packed(db: Database, priority: int) -> Iterator[Packed]:
    """The class's segments that hold undelivered events, in id order, streamed (none in
    a file without segment tables)."""
    if not has_segments(db):
        return
    rows = db.execute(
        f"SELECT s.id, {LAST_ID}, {SIZE}, {UPTO}, "  # noqa: S608 - constant names
        "IIF(typeof(s.accepted) IN ('real', 'integer'), s.accepted, NULL), "
        "s.synced IS 1, CAST(s.body AS BLOB) "
        f"FROM {SEGMENT_TABLES[priority]} s LEFT JOIN {POSITIONS} p ON p.id = s.id "
        "ORDER BY s.id"
    )
    for seg_id, last_id, size, position, accepted, synced, blob in rows:
        # A damaged position says nothing (as segment_store reads it).
        sane = position is not None and seg_id - 1 <= position < last_id
        stored = Stored(seg_id, last_id, size, position if sane else None)
        if stored.events > 0:
            yield Packed(stored, accepted, bool(synced), b"" if blob is None else bytes(blob))


def _segment_entries(db: Database, priority: int, source_glob: str | None) -> Iterator[Entry]:
    name = PRIORITIES[priority]
    segments = packed(db, priority)
    first = next(segments, None)
    if first is None:
        return
    sources: dict[int, str] = dict(db.execute("SELECT id, source FROM sources").fetchall())
    routes: dict[int, tuple[str, int, int]] = {
        row[0]: (row[1], row[2], row[3])
        for row in db.execute("SELECT id, topic, qos, retain FROM routes").fetchall()
    }
    wanted = (
        None
        if source_glob is None
        else {
            row[0]
            for row in db.execute("SELECT id FROM sources WHERE source GLOB ?", (source_glob,))
        }
    )
    for seg in itertools.chain([first], segments):
        stored = seg.stored
        try:
            decoded = seg.decode()
        except SegmentDamaged:
            if wanted is None:
                yield Entry(
                    stored.first, name, None, None, None, None, seg.accepted, seg.synced, seg.blob
                )
            continue
        for i in range(stored.first - stored.id, len(decoded)):
            source_id = decoded.sources[i]
            if wanted is not None and source_id not in wanted:
                continue
            route = routes.get(decoded.routes[i])
            yield Entry(
                stored.id + i,
                name,
                sources.get(source_id),
                None if route is None else route[0],
                None if route is None else route[1],
                None if route is None else bool(route[2]),
                seg.accepted,
                seg.synced,
                decoded.payload(i),
            )


def _source_filter(source_glob: str | None) -> tuple[str, list[object]]:
    if source_glob is None:
        return "", []
    return "WHERE o.source_id IN (SELECT id FROM sources WHERE source GLOB ?) ", [source_glob]


def _class_entries(
    db: Database, priority: int, source_glob: str | None, limit: int | None
) -> Iterator[Entry]:
    where, params = _source_filter(source_glob)
    name = PRIORITIES[priority]
    rows = db.execute(
        # Whatever a damaged record's header says a value is, it is read as what it should
        # be: the payload as bytes (a TEXT one may not even be UTF-8), times as numbers.
        "SELECT o.id, s.source, r.topic, r.qos, r.retain, "  # noqa: S608 - constant names
        "IIF(typeof(o.accepted) IN ('real', 'integer'), o.accepted, NULL), "
        "o.synced IS 1, CAST(o.payload AS BLOB) "
        f"FROM {CLASS_TABLES[priority]} o "
        "LEFT JOIN sources s ON s.id = o.source_id LEFT JOIN routes r ON r.id = o.route_id "
        f"{where}ORDER BY o.id LIMIT ?",
        [*params, -1 if limit is None else limit],
    )
    for row_id, source, topic, qos, retain, accepted, synced, payload in rows:
        yield Entry(
            row_id,
            name,
            source,
            topic,
            qos,
            None if retain is None else bool(retain),
            accepted,
            bool(synced),
            b"" if payload is None else bytes(payload),
        )


def entries(
    db: Database, *, source_glob: str | None = None, limit: int | None = None
) -> Iterator[Entry]:
    """Undelivered events in acceptance order (all classes merged, rows and segments),
    streamed."""
    streams = [
        heapq.merge(
            _class_entries(db, p, source_glob, limit),
            _segment_entries(db, p, source_glob),
            key=lambda e: e.id,
        )
        for p in range(len(CLASS_TABLES))
    ]
    merged = heapq.merge(*streams, key=lambda e: e.id)
    return merged if limit is None else itertools.islice(merged, limit)


def dead_letters(
    db: Database,
    *,
    source_glob: str | None = None,
    reason_glob: str | None = None,
    limit: int | None = None,
) -> Iterator[DeadLetter]:
    """Dead letters, oldest first, streamed."""
    conditions = []
    params: list[object] = []
    for column, glob in (("source", source_glob), ("reason", reason_glob)):
        if glob is not None:
            conditions.append(f"{column} GLOB ?")
            params.append(glob)
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    rows = db.execute(
        "SELECT id, at, stage, reason, source, topic, CAST(payload AS BLOB), "  # noqa: S608 - no user text
        "IIF(typeof(crc) = 'text', CAST(crc AS BLOB), crc) FROM dead_letters "
        f"{where}ORDER BY id LIMIT ?",
        [*params, -1 if limit is None else limit],
    )
    for row_id, at, stage, reason, source, topic, payload, crc in rows:
        yield DeadLetter(
            row_id,
            at,
            stage,
            reason,
            source,
            topic,
            None if payload is None else bytes(payload),
            crc,
        )
