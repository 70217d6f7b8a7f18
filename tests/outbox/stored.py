"""Reading what an outbox file holds, for tests: the events of its rows and of its
segments alike (``tidegate.outbox.segment_store``), and unpacking segments into rows
so a test can damage a stored event by SQL on its class table."""

from __future__ import annotations

import sqlite3

from tidegate.outbox import segment_store
from tidegate.outbox.schema import CLASS_TABLES

StoredEvent = tuple[int, int, bytes]
"""(id, priority class, payload)."""


def stored_events(db: sqlite3.Connection) -> list[StoredEvent]:
    """Every undelivered event in the file, in id order (read only)."""
    out: list[StoredEvent] = []
    for cls, table in enumerate(CLASS_TABLES):
        out += [
            (int(i), cls, bytes(p))
            for i, p in db.execute(f"SELECT id, CAST(payload AS BLOB) FROM {table}")  # noqa: S608
        ]
        for seg in segment_store.every(db, cls):
            decoded = segment_store.read(db, cls, seg.id)
            out += [
                (seg.id + i, cls, decoded.payload(i))
                for i in range(seg.first - seg.id, len(decoded))
            ]
    return sorted(out)


def stored_payloads(db: sqlite3.Connection) -> list[bytes]:
    return [p for _, _, p in stored_events(db)]


def unpack_segments(db: sqlite3.Connection) -> sqlite3.Connection:
    """Every segment's undelivered events become rows of their class table (as the
    outbox does before it handles an event on its own): the same events, ids and
    checksums, so a gateway running on the file sees no change. Returns ``db``."""
    tracked = (
        db.execute(
            "SELECT 1 FROM temp.sqlite_master WHERE name = ?", (segment_store.GONE,)
        ).fetchone()
        is not None
    )
    own = not db.in_transaction
    if own:
        db.execute("BEGIN IMMEDIATE")
    segment_store.unpack_all(db, tracked=tracked)
    if own:
        db.execute("COMMIT")
    return db
