"""``tidegate buffer purge``: remove undelivered events and/or dead letters, counted
(``purged_outbox``, ``purged_dead_letters``) in short write transactions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from tidegate.outbox.admin.access import bump, scalar, snapshot, write_transaction
from tidegate.outbox.schema import CLASS_TABLES

PURGE_CHUNK = 2000
"""Rows deleted per write transaction (a delete is cheaper than a replayed insert)."""


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    outbox: int = 0
    dead_letters: int = 0


def count_for_purge(db: Database, *, outbox: bool, dead: bool) -> PurgeCounts:
    with snapshot(db):
        events = sum(int(db.table(t).count) for t in CLASS_TABLES) if outbox else 0
        letters = int(db.table("dead_letters").count) if dead else 0
    return PurgeCounts(events, letters)


def _purge_table(db: Database, table: str, counter: str) -> int:
    """Delete the rows present now (not those the gateway adds meanwhile), in chunks."""
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


def purge(db: Database, *, outbox: bool, dead: bool) -> PurgeCounts:
    """Remove undelivered events and/or dead letters, counting what went."""
    events = sum(_purge_table(db, t, "purged_outbox") for t in CLASS_TABLES) if outbox else 0
    letters = _purge_table(db, "dead_letters", "purged_dead_letters") if dead else 0
    return PurgeCounts(events, letters)
