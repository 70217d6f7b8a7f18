"""An outbox's figures (``OutboxStats``): kept up to date by every commit, ack and
drop, and counted again from the tables at open and after ``tidegate buffer``
changed the file (``recount``)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tidegate.outbox import segment_store
from tidegate.outbox.ledger.reconcile import LOST, Recovery
from tidegate.outbox.schema import CLASS_TABLES, INTERNAL_COUNTERS, NEXT_ID, ROW_OVERHEAD

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox


@dataclass(slots=True)
class OutboxStats:
    depth: int = 0
    bytes: int = 0
    """Payload bytes plus ROW_OVERHEAD per event: what ``max_bytes`` bounds."""
    depth_by_priority: list[int] = field(default_factory=lambda: [0, 0, 0])
    accepted: int = 0
    acked: int = 0
    dead_letters: int = 0
    dead_letter_bytes: int = 0
    commits: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    """Persistent counters by reason (dropped_full, dropped_expired, ...)."""
    max_bytes: int = 0
    """The bound in force (``max_bytes``, lowered if the disk has less room)."""
    moved_aside: str | None = None
    """Where a corrupt outbox was moved at open, if it was."""
    undeleted: int = 0
    """Delivered events whose delete failed so far (a full disk); never sent again."""
    pending_drops: dict[str, int] = field(default_factory=dict)
    """Drops counted but not yet committed to the file (kept in the ledger meanwhile);
    ``drops`` does not include them."""
    recovery: Recovery | None = None
    """What the outbox found at open if it had lost events or had to skip seqs."""

    @property
    def lost_in_recovery(self) -> int:
        """Events lost to a damaged, emptied or cut file, found at open (in ``drops``)."""
        return self.drops.get(LOST, 0)


def recount(box: Outbox) -> None:
    """Count depth and bytes from the tables (at open, and after admin changes)."""
    db = box.db
    stats = box.stats
    depth = bytes_ = top = 0
    # Segment ids above the counter of ids used are a damaged value, not ids.
    below = box._read_counter(db, NEXT_ID) or (1 << 62)
    for priority, table in enumerate(CLASS_TABLES):
        n, size, high = db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), COALESCE(MAX(id), 0) "  # noqa: S608 - table names are constants
            f"FROM {table}"
        ).fetchone()
        packed, packed_size, packed_top = segment_store.totals(db, priority)
        n += packed
        size += packed_size
        stats.depth_by_priority[priority] = n
        depth += n
        bytes_ += size + n * ROW_OVERHEAD
        top = max(top, high, min(packed_top, below - 1))
    dead, dead_bytes = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM dead_letters"
    ).fetchone()
    stats.depth, stats.bytes = depth, bytes_
    stats.dead_letters, stats.dead_letter_bytes = dead, dead_bytes
    box._next_id = max(box._next_id, top + 1)


def read_drops(box: Outbox, db: sqlite3.Connection) -> None:
    """The persistent counters as the file has them."""
    box.stats.drops = {
        name: value
        for name, value in db.execute("SELECT name, value FROM counters")
        if name not in INTERNAL_COUNTERS
    }
