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

Deletes are seen through TEMP triggers on the class tables, the segment tables
and the segments' delivery positions: they record each deleted id range in a
TEMP table, inside the deleting transaction (a rollback takes the record back
with the delete); unpacking a segment into rows takes its record back
(``tidegate.outbox.segment_store``). This connection's triggers only:
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

from tidegate.outbox import segment_store
from tidegate.outbox.ledger.state import MAX_HOLES, Undelivered
from tidegate.outbox.schema import CLASS_TABLES, POSITIONS, SEGMENT_TABLES
from tidegate.outbox.segment_store import GONE

Ranges = list[tuple[int, int]]


def install(db: sqlite3.Connection) -> None:
    """The TEMP table and triggers (this connection only; kept in memory, so they work
    on a full disk and leave no file): a deleted row, a deleted segment's undelivered
    events, a segment's delivered prefix growing."""
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {GONE} "
        "(cls INTEGER NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL)"
    )
    for cls, (table, segments) in enumerate(zip(CLASS_TABLES, SEGMENT_TABLES, strict=True)):
        db.execute(
            f"CREATE TEMP TRIGGER IF NOT EXISTS {GONE}_{cls} AFTER DELETE ON main.{table} "  # noqa: S608 - constant names
            f"BEGIN INSERT INTO {GONE} VALUES ({cls}, old.id, old.id); END"
        )
        db.execute(
            f"CREATE TEMP TRIGGER IF NOT EXISTS {GONE}_s{cls} AFTER DELETE ON main.{segments} "  # noqa: S608 - constant names
            f"BEGIN INSERT INTO {GONE} VALUES ({cls}, COALESCE((SELECT upto FROM "
            f"main.{POSITIONS} WHERE id = old.id), old.id - 1) + 1, "
            # Type-checked as segment_store reads it (a damaged value: the first id).
            f"IIF(typeof(old.last_id) = 'integer' AND old.last_id >= old.id, old.last_id, "
            "old.id)); END"
        )
    db.execute(
        f"CREATE TEMP TRIGGER IF NOT EXISTS {GONE}_p AFTER INSERT ON main.{POSITIONS} "  # noqa: S608 - constant names
        f"BEGIN INSERT INTO {GONE} VALUES (new.cls, new.id, new.upto); END"
    )
    db.execute(
        f"CREATE TEMP TRIGGER IF NOT EXISTS {GONE}_u AFTER UPDATE OF upto ON main.{POSITIONS} "  # noqa: S608 - constant names
        f"BEGIN INSERT INTO {GONE} VALUES (new.cls, old.upto + 1, new.upto); END"
    )


def _lowest(db: sqlite3.Connection, cls: int, next_id: int) -> int:
    (low,) = db.execute(f"SELECT MIN(id) FROM {CLASS_TABLES[cls]}").fetchone()  # noqa: S608
    seg = segment_store.first(db, cls)
    lows = [int(x) for x in (low, None if seg is None else seg.first) if x is not None]
    return min(lows) if lows else next_id


def _merge(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


def _rows_within(db: sqlite3.Connection, cls: int, low: int, high: int) -> list[int]:
    rows = [
        i
        for (i,) in db.execute(
            f"SELECT id FROM {CLASS_TABLES[cls]} WHERE id BETWEEN ? AND ? ORDER BY id",  # noqa: S608
            (low, high),
        )
    ]
    for seg in segment_store.overlapping(db, cls, low, high):
        rows += range(max(low, seg.first), min(high, seg.last_id) + 1)
    return sorted(rows)


def _none_between(db: sqlite3.Connection, cls: int, after: int, before: int) -> bool:
    row = db.execute(
        f"SELECT 1 FROM {CLASS_TABLES[cls]} WHERE id > ? AND id < ? LIMIT 1",  # noqa: S608
        (after, before),
    ).fetchone()
    return row is None and (
        before - after < 2 or not segment_store.overlapping(db, cls, after + 1, before - 1)
    )


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
        for cls, low, high in db.execute(
            f"SELECT cls, low, high FROM temp.{GONE} WHERE high > CASE cls {cases} END",  # noqa: S608
            self.low,
        ):
            first = max(low, self.low[cls] + 1)
            if first <= high:
                new[cls].append((first, high))
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
        low, top = described.low[cls], described.next_id - 1
        if low <= top:
            skip = _merge(excluded)
            for seg in segment_store.overlapping(db, cls, low, top):
                first, last = max(low, seg.first), min(top, seg.last_id)
                total += last - first + 1 - sum(
                    max(0, min(last, b) - max(first, a) + 1) for a, b in skip
                )
    return total
