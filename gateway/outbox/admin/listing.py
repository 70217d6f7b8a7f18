"""``tidegate buffer peek`` and ``export``: undelivered events in acceptance order
and dead letters, streamed from the file (inside the caller's ``snapshot``)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from sqlite_utils import Database

from tidegate.outbox.schema import CLASS_TABLES
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
    """Undelivered events in acceptance order (all classes merged), streamed."""
    streams = [_class_entries(db, p, source_glob, limit) for p in range(len(CLASS_TABLES))]
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
