"""The outbox's bound, and what a commit that does not fit does.

The bound in force is ``max_bytes``, or less if the disk holds less
(``tidegate.outbox.disk``: other files grow too, so it is re-checked at every
commit). A commit that would go over it follows ``when_full``: drop the oldest
events of the lowest priority class, drop the newest, or refuse (``OutboxFull``,
backpressure). Every drop is counted by reason in the ``counters`` table, in the
commit's own transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from tidegate.outbox import segment_store
from tidegate.outbox.disk import PAGE
from tidegate.outbox.limits import OutboxFull
from tidegate.outbox.schema import CLASS_TABLES, ROW_OVERHEAD
from tidegate.outbox.segment import SegmentDamaged

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox
    from tidegate.outgoing import Outgoing


def refresh_bound(box: Outbox, incoming: int) -> None:
    """The bound in force: ``max_bytes``, or less if the disk holds less now (other
    files grow too: re-checked at every commit). Also remakes the reserve when there
    is room for it again."""
    disk = box._disk
    if disk is None:
        box.stats.max_bytes = box.limits.max_bytes
        return
    db = box.db
    # This commit's own WAL frames: its rows, and as many again if it drops the oldest.
    txn = int(incoming * disk.factor * 2.2) + 16 * PAGE
    now = time.monotonic()
    if disk.can_skip_check(now, txn):
        return
    disk.checked_at = now
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    (free_pages,) = db.execute("PRAGMA freelist_count").fetchone()
    disk.measure(pages, free_pages, box.stats.bytes + box.stats.dead_letter_bytes)
    room = disk.room(pages, free_pages, txn)
    box.stats.max_bytes = disk.bound(box.limits.max_bytes, box.stats.bytes, room)
    if not db.in_transaction and not disk.has_reserve:
        disk.ensure_reserve()


class Fitted(NamedTuple):
    """What is left of a commit after ``when_full`` made it fit."""

    items: Sequence[Outgoing]
    payloads: list[bytes]
    keep: int
    """How many of ``items`` (the first ones) are stored."""
    incoming: int
    """Their size, as ``max_bytes`` counts it."""
    seqs: dict[str, int]


def make_room(box: Outbox, db: sqlite3.Connection, batch: Fitted, over: int) -> Fitted:
    """Inside the commit's transaction: make ``over`` bytes of room for ``batch`` as
    ``when_full`` says, counting what it drops. Raises OutboxFull for ``block``."""
    items, payloads, _, incoming, seqs = batch
    stats = box.stats
    keep = len(items)
    policy = box.limits.when_full
    if policy == "block":
        raise OutboxFull(f"outbox full ({stats.bytes} of {stats.max_bytes} bytes); holding events")
    if policy == "drop_newest":
        keep, incoming, seqs = fit_newest(box, items, payloads, stats.max_bytes - stats.bytes)
        box._bump(db, "dropped_newest", len(items) - keep)
        return Fitted(items, payloads, keep, incoming, seqs)
    # Lowest incoming class first: each class may only push out stored events of its
    # own class or lower, oldest first; what still does not fit goes from its own
    # newest. A newer low event never costs an older higher one its place.
    dropped = 0
    skip: set[int] = set()
    for klass in sorted({o.priority for o in items}, reverse=True):
        if over <= 0:
            break
        gone, freed = drop_oldest(box, db, over, down_to=klass)
        dropped += gone
        over -= freed
        if over > 0:
            own = newest_first(items, payloads, klass, over)
            skip |= own
            dropped += len(own)
            over -= sum(len(payloads[i]) + ROW_OVERHEAD for i in own)
    if skip:
        incoming -= sum(len(payloads[i]) + ROW_OVERHEAD for i in skip)
        items = [o for i, o in enumerate(items) if i not in skip]
        payloads = [p for i, p in enumerate(payloads) if i not in skip]
        keep = len(items)
    box._bump(db, "dropped_full", dropped)
    return Fitted(items, payloads, keep, incoming, seqs)


def drop_oldest(box: Outbox, db: sqlite3.Connection, need: int, down_to: int) -> tuple[int, int]:
    """Free ``need`` bytes from the oldest events, lowest class first, never from a
    class above ``down_to``. Returns (events dropped, bytes freed)."""
    stats = box.stats
    dropped = freed = 0
    for priority in range(len(CLASS_TABLES) - 1, down_to - 1, -1):
        while freed < need:
            gone, size = _drop_head(box, db, priority, need - freed)
            if not gone:
                break
            box._rows_changed()
            freed += size
            dropped += gone
            stats.depth_by_priority[priority] -= gone
            stats.depth -= gone
            stats.bytes -= size
    return dropped, freed


def _drop_head(box: Outbox, db: sqlite3.Connection, cls: int, need: int) -> tuple[int, int]:
    """Drop the class's oldest events, about ``need`` bytes of them: a whole segment
    if it fits in that, else the oldest of it (its gone prefix grows, as a delivery's
    would: nothing is rewritten), else rows. (events, bytes)."""
    table = CLASS_TABLES[cls]
    seg = segment_store.first(db, cls)
    (row_head,) = db.execute(f"SELECT MIN(id) FROM {table}").fetchone()  # noqa: S608
    if seg is not None and (row_head is None or seg.first < row_head):
        size = segment_store.undelivered_size(db, cls, seg) + seg.events * ROW_OVERHEAD
        if size <= need:
            segment_store.delete(db, cls, seg.id)
            return seg.events, size
        try:
            ends = segment_store.read(db, cls, seg.id).ends
        except SegmentDamaged:  # its events cannot be told apart: all of them go
            segment_store.delete(db, cls, seg.id)
            return seg.events, size
        start = at = seg.first - seg.id
        freed = 0
        while freed < need and at < len(ends):
            freed += ends[at] - (ends[at - 1] if at else 0) + ROW_OVERHEAD
            at += 1
        if at == len(ends):  # only its last event made enough room: all of it goes
            segment_store.delete(db, cls, seg.id)
        else:
            segment_store.advance(db, cls, seg.id, seg.id + at - 1)
        return at - start, freed
    below = (1 << 62) if seg is None else seg.first
    rows = db.execute(
        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE id < ? "  # noqa: S608
        "ORDER BY id LIMIT ?) RETURNING LENGTH(payload)",
        (below, max(16, min(5000, need // 200 + 1))),
    ).fetchall()
    return len(rows), sum(r[0] for r in rows) + len(rows) * ROW_OVERHEAD


def fit_newest(
    box: Outbox, items: Sequence[Outgoing], payloads: list[bytes], room: int
) -> tuple[int, int, dict[str, int]]:
    """How many of ``items`` fit in ``room`` bytes, their size, and the seqs they use."""
    seqs = dict(box._last_seq)
    used = 0
    keep = 0
    for outgoing, payload in zip(items, payloads, strict=True):
        size = len(payload) + ROW_OVERHEAD
        if used + size > room:
            break
        used += size
        keep += 1
        seqs[outgoing.event.source] = seqs.get(outgoing.event.source, 0) + 1
    return keep, used, seqs


def newest_first(
    items: Sequence[Outgoing], payloads: list[bytes], klass: int, need: int
) -> set[int]:
    """Indexes of incoming events of one class to drop, newest first, to free ``need`` bytes."""
    skip: set[int] = set()
    freed = 0
    for i in range(len(items) - 1, -1, -1):
        if freed >= need:
            break
        if items[i].priority == klass:
            skip.add(i)
            freed += len(payloads[i]) + ROW_OVERHEAD
    return skip
