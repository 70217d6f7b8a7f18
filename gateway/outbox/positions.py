"""Each uplink's delivery position in the outbox (``tidegate.outbox.shares``): what it
has done, in memory and in the ``uplink_positions`` table, and which stored events an
id list still names (``present``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tidegate.errors import BufferError_
from tidegate.outbox import segment_store
from tidegate.outbox.schema import CLASS_TABLES

TABLE = "uplink_positions"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (uplink TEXT NOT NULL, cls INTEGER NOT NULL, "
    "upto INTEGER NOT NULL, PRIMARY KEY (uplink, cls)) WITHOUT ROWID"
)
PRUNE_AFTER = 50_000
"""Handed-out ids kept above a position before the missing ones are looked for (and
then again each time that many more are kept)."""


class Position:
    """One uplink's place in the outbox, per priority class."""

    def __init__(self, classes: int) -> None:
        self.upto = [0] * classes
        """Per class: every event up to here is done for the uplink (persisted)."""
        self.handed: list[dict[int, bool]] = [{} for _ in range(classes)]
        """Per class, ids handed out above ``upto``, in id order: done or not."""
        self.cls: dict[int, int] = {}
        """Ids handed out on the current connection and not done: their class."""
        self.routes: dict[int, frozenset[str] | None] = {}
        """The same ids: the uplinks each is routed to (None: all)."""
        self.unsent: dict[int, tuple[int, bool]] = {}
        """Ids done without being delivered and still stored: their class, and whether
        refused (True: a dead letter has a copy) or given up (too old)."""
        self.prune_at = [PRUNE_AFTER] * classes
        self.moved = False
        """``upto`` moved since it was last written."""

    def is_done(self, cls: int, row_id: int) -> bool:
        return row_id <= self.upto[cls] or self.handed[cls].get(row_id, False)

    def hand(self, cls: int, row_id: int, routed: frozenset[str] | None) -> None:
        """``row_id`` is handed out on this connection (again, after a reconnect)."""
        self.handed[cls].setdefault(row_id, False)
        self.cls[row_id] = cls
        self.routes[row_id] = routed

    def restart(self) -> None:
        """A new connection reads again from ``upto``: nothing is handed out on it yet
        (what is not done keeps its place in ``handed``, so ``upto`` never passes it)."""
        self.cls.clear()
        self.routes.clear()

    def advance(self) -> None:
        """Move ``upto`` over the done ids at the head of each class."""
        for cls, handed in enumerate(self.handed):
            moved = self.upto[cls]
            for row_id in sorted(handed):
                if not handed[row_id]:
                    break
                moved = row_id
            if moved != self.upto[cls]:
                for row_id in [i for i in handed if i <= moved]:
                    del handed[row_id]
                self.upto[cls] = moved
                self.moved = True

    def forget(self, cls: int, gone: set[int]) -> None:
        """These handed-out ids left the outbox some other way: done, nothing to send."""
        handed = self.handed[cls]
        for row_id in gone:
            if row_id in handed:
                handed[row_id] = True
            self.cls.pop(row_id, None)
            self.routes.pop(row_id, None)
            self.unsent.pop(row_id, None)

    def unsent_in(self, cls: int) -> list[int]:
        """The class's ids done without being delivered, sorted."""
        return sorted(i for i, (c, _) in self.unsent.items() if c == cls)


def present(db: sqlite3.Connection, cls: int, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` (sorted) are stored, undelivered, in class ``cls``."""
    if not ids:
        return set()
    low, high = ids[0], ids[-1]
    rows = {
        i
        for (i,) in db.execute(
            f"SELECT id FROM {CLASS_TABLES[cls]} WHERE id BETWEEN ? AND ?",  # noqa: S608
            (low, high),
        )
    }
    spans = [(s.first, s.last_id) for s in segment_store.overlapping(db, cls, low, high)]
    return {i for i in ids if i in rows or any(a <= i <= b for a, b in spans)}


def load(db: sqlite3.Connection, positions: dict[str, Position]) -> set[str]:
    """Read the positions of ``positions``' uplinks; give every one its rows and drop
    the rows of uplinks no longer configured (returned)."""
    try:
        db.execute(CREATE)
        gone: set[str] = set()
        for name, cls, upto in db.execute(f"SELECT uplink, cls, upto FROM {TABLE}"):  # noqa: S608
            if name not in positions:
                gone.add(name)
            elif 0 <= cls < len(CLASS_TABLES):
                positions[name].upto[cls] = int(upto)
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            f"INSERT OR IGNORE INTO {TABLE} (uplink, cls, upto) VALUES (?, ?, 0)",  # noqa: S608
            [(name, cls) for name in positions for cls in range(len(CLASS_TABLES))],
        )
        db.executemany(f"DELETE FROM {TABLE} WHERE uplink = ?", [(n,) for n in gone])  # noqa: S608
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise BufferError_(f"cannot read the uplinks' positions in the outbox: {exc}") from None
    return gone


def save(db: sqlite3.Connection, positions: dict[str, Position]) -> None:
    """Write the positions that moved."""
    moved = [(name, p) for name, p in positions.items() if p.moved]
    if not moved:
        return
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            f"INSERT INTO {TABLE} (uplink, cls, upto) VALUES (?, ?, ?) "  # noqa: S608
            "ON CONFLICT (uplink, cls) DO UPDATE SET upto = excluded.upto",
            [(name, cls, upto) for name, p in moved for cls, upto in enumerate(p.upto)],
        )
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise BufferError_(f"cannot record the uplinks' positions in the outbox: {exc}") from None
    for _, p in moved:
        p.moved = False


def stored_after(db: sqlite3.Connection, cls: int, upto: int) -> int:
    """Events of class ``cls`` stored above ``upto``."""
    (rows,) = db.execute(
        f"SELECT COUNT(*) FROM {CLASS_TABLES[cls]} WHERE id > ?",  # noqa: S608 - constants
        (upto,),
    ).fetchone()
    return int(rows) + sum(
        s.last_id - max(s.first, upto + 1) + 1
        for s in segment_store.overlapping(db, cls, upto + 1, 1 << 62)
        if s.last_id > upto
    )


def stored_upto(db: sqlite3.Connection, cls: int, upto: int) -> list[int]:
    """The ids of class ``cls`` stored at or below ``upto``."""
    ids = [
        i
        for (i,) in db.execute(
            f"SELECT id FROM {CLASS_TABLES[cls]} WHERE id <= ?",  # noqa: S608 - constants
            (upto,),
        )
    ]
    for s in segment_store.overlapping(db, cls, 1, upto):
        ids += range(s.first, min(s.last_id, upto) + 1)
    return sorted(ids)
