"""Which rows of the outbox are undelivered, in a few numbers the ledger keeps.

A file that lost its last commits (its WAL cut or overwritten after a ``kill
-9``) must be charged with the undelivered events it no longer has, and
never with events the broker already has: a backlog delivered as fast as it
comes loses nothing when the log of its commits is cut. The ledger therefore
describes the undelivered set exactly (``outbox_ledger.Undelivered``): per
priority class, the lowest undelivered id, the ids deleted above it
("holes"), and the next id. Rows are deleted from the oldest of each class in
the normal course (acks in order, drops, expiry, purges), so the holes are
nearly always none; a rejected event or an out-of-order ack leaves one.

Deletes are seen through a TEMP trigger per class table: it records each
deleted id in a TEMP table, inside the deleting transaction (a rollback takes
the record back with the delete). This connection's triggers only:
``tidegate buffer`` purges through its own connection, from the oldest, and
the gateway recounts after any admin change (``stale``). Nothing here writes
the outbox file.

After a cut log, the events lost are the ledger's undelivered rows whose ids
the file no longer has: rows above the file's next id (their commits are
gone). ``count_present`` counts the ones the file still has.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tidegate.outbox.ledger.state import MAX_HOLES, Undelivered
from tidegate.outbox.schema import CLASS_TABLES

GONE = "tidegate_gone"

Ranges = list[tuple[int, int]]


def install(db: sqlite3.Connection) -> None:
    """The TEMP table and triggers (this connection only; kept in memory, so they work
    on a full disk and leave no file)."""
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {GONE} (cls INTEGER NOT NULL, id INTEGER)")
    for cls, table in enumerate(CLASS_TABLES):
        db.execute(
            f"CREATE TEMP TRIGGER IF NOT EXISTS {GONE}_{cls} AFTER DELETE ON main.{table} "  # noqa: S608 - constant names
            f"BEGIN INSERT INTO {GONE} VALUES ({cls}, old.id); END"
        )


def _lowest(db: sqlite3.Connection, cls: int, next_id: int) -> int:
    (low,) = db.execute(f"SELECT MIN(id) FROM {CLASS_TABLES[cls]}").fetchone()  # noqa: S608
    return next_id if low is None else int(low)


def _merge(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


def _rows_within(db: sqlite3.Connection, cls: int, low: int, high: int) -> list[int]:
    return [
        i
        for (i,) in db.execute(
            f"SELECT id FROM {CLASS_TABLES[cls]} WHERE id BETWEEN ? AND ? ORDER BY id",  # noqa: S608
            (low, high),
        )
    ]


def _none_between(db: sqlite3.Connection, cls: int, after: int, before: int) -> bool:
    row = db.execute(
        f"SELECT 1 FROM {CLASS_TABLES[cls]} WHERE id > ? AND id < ? LIMIT 1",  # noqa: S608
        (after, before),
    ).fetchone()
    return row is None


class Tracker:
    """The description of the undelivered rows, kept current after each commit."""

    def __init__(self) -> None:
        self.low = [0] * len(CLASS_TABLES)
        self.holes: list[Ranges] = [[] for _ in CLASS_TABLES]
        self._unsure_below = [0] * len(CLASS_TABLES)
        """Per class: holes below this id may be missing from ``holes`` (too many)."""
        self.stale = True
        """Every class's lowest id must be read again (at open, after an admin change)."""
        self._exact = True
        self._touched = f"SELECT DISTINCT cls FROM temp.{GONE}"  # noqa: S608 - a constant

    def start(self, db: sqlite3.Connection, next_id: int, kept: Undelivered | None) -> None:
        """At open (after reconciliation): describe the file as it is. ``kept``: the
        ledger's description, if it describes this file (its holes stay holes, except
        where the file has rows again: a cut log brought them back)."""
        for cls in range(len(CLASS_TABLES)):
            low = self.low[cls] = _lowest(db, cls, next_id)
            holes: Ranges = []
            if kept is not None and cls < len(kept.holes):
                for first, last in kept.holes[cls]:
                    if last <= low:
                        continue
                    start = max(first, low + 1)
                    for row in _rows_within(db, cls, start, last):
                        if row > start:
                            holes.append((start, row - 1))
                        start = row + 1
                    if start <= last:
                        holes.append((start, last))
            self.holes[cls] = holes
            self._unsure_below[cls] = 0 if kept is None or kept.exact else next_id
        self._exact = kept is None or kept.exact
        self.stale = False

    def describe(self, db: sqlite3.Connection, next_id: int) -> Undelivered:
        """After a commit: take in the deletes since the last call. (Runs after every
        commit: when nothing was deleted, one query of an empty in-memory table.)"""
        if not db.in_transaction:  # (inside one, deletes may still be rolled back)
            self._take_deletes(db, next_id)
        # The lists are shared with the ledger's state, which is written before the next
        # call can change them.
        return Undelivered(next_id, self.low, self.holes, self._exact)

    def _take_deletes(self, db: sqlite3.Connection, next_id: int) -> None:
        touched = {int(c) for (c,) in db.execute(self._touched)}
        if self.stale:
            touched = set(range(len(CLASS_TABLES)))
            self.stale = False
        if not touched:
            return
        for cls in touched:
            self.low[cls] = _lowest(db, cls, next_id)
        new: list[Ranges] = [[] for _ in CLASS_TABLES]
        cases = " ".join(f"WHEN {c} THEN ?" for c in range(len(CLASS_TABLES)))
        for cls, row_id in db.execute(
            f"SELECT cls, id FROM temp.{GONE} WHERE id > CASE cls {cases} END",  # noqa: S608
            self.low,
        ):
            new[cls].append((row_id, row_id))
        db.execute(f"DELETE FROM temp.{GONE}")  # noqa: S608
        for cls in touched:
            low = self.low[cls]
            holes = [(max(a, low + 1), b) for a, b in self.holes[cls] if b > low]
            if new[cls]:
                holes = self._join(db, cls, _merge(holes + new[cls]), next_id)
            self.holes[cls] = holes
        self._exact = all(
            low >= unsure for low, unsure in zip(self.low, self._unsure_below, strict=True)
        )

    def _join(self, db: sqlite3.Connection, cls: int, holes: Ranges, next_id: int) -> Ranges:
        """Join neighbouring holes with no row of the class between them (the ids between
        belong to other classes): one indexed probe per pair."""
        out: Ranges = []
        for first, last in holes:
            if out and _none_between(db, cls, out[-1][1], first):
                out[-1] = (out[-1][0], last)
            else:
                out.append((first, last))
        if len(out) > MAX_HOLES:
            # Too many to keep: the highest are forgotten, and a count based on the
            # description is a lower bound until every row below next_id is gone.
            out = out[:MAX_HOLES]
            self._unsure_below[cls] = next_id
        return out


def count_present(
    db: sqlite3.Connection, described: Undelivered, undeleted: Sequence[tuple[int, int]]
) -> int:
    """How many of the described undelivered rows the file has (delivered rows whose
    delete failed, ``undeleted``, are not undelivered)."""
    total = 0
    for cls, table in enumerate(CLASS_TABLES):
        if cls >= len(described.low):
            break
        excluded = [*described.holes[cls], *undeleted]
        sql = f"SELECT COUNT(*) FROM {table} WHERE id >= ? AND id < ?" + (  # noqa: S608
            " AND id NOT BETWEEN ? AND ?" * len(excluded)
        )
        params: list[int] = [described.low[cls], described.next_id]
        for first, last in excluded:
            params += [first, last]
        (n,) = db.execute(sql, params).fetchone()
        total += int(n)
    return total
