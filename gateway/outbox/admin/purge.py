"""``tidegate buffer purge``: remove undelivered events and/or dead letters, counted
(``purged_outbox``, ``purged_dead_letters``) in short write transactions.

A class's undelivered events are its rows and its segments' undelivered events
(``tidegate.outbox.segment_store``): a purge deletes whole segments (and their
delivery positions), counted as the events they had undelivered, then the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from tidegate.outbox import segment_store
from tidegate.outbox.admin.access import bump, has_segments, scalar, snapshot, write_transaction
from tidegate.outbox.schema import CLASS_TABLES, POSITIONS, SEGMENT_TABLES
from tidegate.outbox.segment_store import LAST_ID, SIZE, UPTO

PURGE_CHUNK = 2000
"""Rows deleted per write transaction (a delete is cheaper than a replayed insert);
segments are deleted by as many as hold about this many events (one at least)."""

OUTBOX_COUNTER = "purged_outbox"


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    outbox: int = 0
    dead_letters: int = 0


def count_for_purge(db: Database, *, outbox: bool, dead: bool) -> PurgeCounts:
    with snapshot(db):
        events = 0
        if outbox:
            events = sum(int(db.table(t).count) for t in CLASS_TABLES)
            if has_segments(db):
                events += sum(
                    segment_store.totals(db.conn, cls)[0] for cls in range(len(SEGMENT_TABLES))
                )
        letters = int(db.table("dead_letters").count) if dead else 0
    return PurgeCounts(events, letters)


def _purge_table(db: Database, table: str, counter: str, bound: int | None = None) -> int:
    """Delete the rows present now (not those the gateway adds meanwhile; ids up to
    ``bound``, if given), in chunks."""
    if bound is None:
        bound = int(scalar(db, f"SELECT COALESCE(MAX(id), 0) FROM {table}"))  # noqa: S608 - constant names
    removed = 0
    n = PURGE_CHUNK
    while n == PURGE_CHUNK:
        with write_transaction(db):
            n = db.execute(
                f"DELETE FROM {table} WHERE id IN "  # noqa: S608 - constant names
                f"(SELECT id FROM {table} WHERE id <= ? ORDER BY id LIMIT ?)",
                (bound, PURGE_CHUNK),
            ).rowcount
            bump(db, counter, n)
        removed += n
    return removed


def _purge_segments(db: Database, cls: int, bound: int) -> int:
    """Delete the class's segments up to ``bound`` (each whole, with its position), in
    chunks of about PURGE_CHUNK events; returns the undelivered events they held."""
    table = SEGMENT_TABLES[cls]
    removed = 0
    while True:
        with write_transaction(db):
            found = [
                segment_store.Stored(*row)
                for row in db.execute(
                    f"SELECT s.id, {LAST_ID}, {SIZE}, {UPTO} FROM "  # noqa: S608 - constant names
                    f"{table} s LEFT JOIN {POSITIONS} p ON p.id = s.id "
                    f"WHERE {LAST_ID} <= ? ORDER BY s.id LIMIT ?",
                    (bound, PURGE_CHUNK),
                ).fetchall()
            ]
            n = done = 0
            for seg in found:
                if n and n + seg.events > PURGE_CHUNK:
                    break
                segment_store.delete(db.conn, cls, seg.id)
                n += max(0, seg.events)
                done += 1
            bump(db, OUTBOX_COUNTER, n)
        removed += n
        if done == len(found) < PURGE_CHUNK:
            return removed


def _purge_class(db: Database, cls: int) -> int:
    """Delete the class's events present now: its segments, then its rows (a segment
    the gateway unpacks meanwhile becomes rows of ids up to the same bound)."""
    table, segments = CLASS_TABLES[cls], SEGMENT_TABLES[cls]
    bound = int(
        scalar(
            db,
            f"SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM {table}), "  # noqa: S608 - constant names
            f"(SELECT COALESCE(MAX({LAST_ID}), 0) FROM {segments} s))",
        )
    )
    removed = _purge_segments(db, cls, bound)
    return removed + _purge_table(db, table, OUTBOX_COUNTER, bound)


def purge(db: Database, *, outbox: bool, dead: bool) -> PurgeCounts:
    """Remove undelivered events and/or dead letters, counting what went."""
    events = sum(_purge_class(db, cls) for cls in range(len(CLASS_TABLES))) if outbox else 0
    letters = _purge_table(db, "dead_letters", "purged_dead_letters") if dead else 0
    return PurgeCounts(events, letters)
