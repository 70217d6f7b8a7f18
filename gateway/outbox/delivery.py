"""Deleting delivered events: what ``Outbox.ack`` does.

A delete writes about as much WAL as the rows took: a backlog acknowledged in
one go would need a WAL as large as the backlog. Deletes therefore run in
chunks whose WAL fits within one checkpoint (``tidegate.outbox.disk``), each
its own transaction. If a delete still fails (a disk full even after the
reserve was released), the delivered ids are not forgotten: they are kept in
memory and in the ledger, never handed to the publisher again (not after a
reconnect, nor after a restart), and every later ack and commit deletes them.
"""

from __future__ import annotations

import bisect
import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tidegate.errors import BufferError_
from tidegate.outbox.schema import CLASS_TABLES, ROW_OVERHEAD

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox


def ack(box: Outbox, ids: Iterable[int], payload_bytes: int | None = None) -> int:
    """Delete delivered rows. Returns how many were deleted.

    ``payload_bytes`` (the publisher knows it) saves reading the rows back;
    if some rows were dropped meanwhile by a bound or a purge, the counts
    are taken again from the tables instead. If the delete fails (a full
    disk, even after the reserve was released), the ids are kept — in memory
    and in the ledger — and never handed out again; every later ack and
    commit tries to delete them again.
    """
    id_list = sorted(ids)
    ranges = _ranges(id_list)
    if box._undeleted:
        ranges = _merge(ranges, box._undeleted)
        payload_bytes = None
    if not ranges:
        return 0
    chunks = _chunks(ranges, _ack_chunk(box))
    if len(chunks) > 1:
        payload_bytes = None  # sizes are read back chunk by chunk
    deleted = 0
    try:
        while chunks:
            try:
                deleted += _delete(box, chunks[0], payload_bytes, len(id_list))
            except sqlite3.Error as exc:
                if not box._release_if_full(exc):
                    raise
                deleted += _delete(box, chunks[0], payload_bytes, len(id_list))
            chunks.pop(0)
    except sqlite3.Error as exc:
        box._undeleted = [r for chunk in chunks for r in chunk]
        box.stats.undeleted = sum(high - low + 1 for low, high in box._undeleted)
        box._sync_ledger()
        raise BufferError_(f"cannot delete delivered events from the outbox: {exc}") from None
    if box._undeleted:
        box._undeleted = []
        box.stats.undeleted = 0
    box._sync_ledger()
    return deleted

def _ack_chunk(box: Outbox) -> int:
    """Rows per delete transaction: one transaction's WAL must fit beside the outbox
    (a delivered backlog is acknowledged in large batches)."""
    if box._disk is None:
        return 1 << 30
    depth = box.stats.depth
    return box._disk.ack_chunk(box.stats.bytes / depth if depth else 300.0)

def _delete(
    box: Outbox, ranges: list[tuple[int, int]], payload_bytes: int | None, expected: int
) -> int:
    db = box.db
    deleted = size = 0
    exact = payload_bytes is None
    try:
        db.execute("BEGIN IMMEDIATE")
        for priority, table in enumerate(CLASS_TABLES):
            gone = 0
            for low, high in ranges:
                if exact:
                    # Summed by a read, not by DELETE ... RETURNING: SQLite keeps RETURNING
                    # rows in a temporary table, which spills into temp files beyond a few
                    # thousand rows (measured: +200 disk bytes per event at 100 events per
                    # message, where every ack of a backlog is deleted in chunks).
                    (length,) = db.execute(
                        f"SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM {table} "  # noqa: S608
                        "WHERE id BETWEEN ? AND ?",
                        (low, high),
                    ).fetchone()
                    size += length
                    gone += db.execute(
                        f"DELETE FROM {table} WHERE id BETWEEN ? AND ?",  # noqa: S608
                        (low, high),
                    ).rowcount
                else:
                    gone += db.execute(
                        f"DELETE FROM {table} WHERE id BETWEEN ? AND ?",  # noqa: S608
                        (low, high),
                    ).rowcount
            box.stats.depth_by_priority[priority] -= gone
            deleted += gone
        box._commit()
    except sqlite3.Error:
        box._rollback()
        with contextlib.suppress(sqlite3.Error):
            box.recount()
        raise
    box.stats.acked += deleted
    if exact or payload_bytes is None:
        box.stats.depth -= deleted
        box.stats.bytes -= size + deleted * ROW_OVERHEAD
    elif deleted == expected:
        box.stats.depth -= deleted
        box.stats.bytes -= payload_bytes + deleted * ROW_OVERHEAD
    else:
        box.recount()  # rows dropped while in flight: their size is gone already
    return deleted


def delete_undeleted(box: Outbox, db: sqlite3.Connection) -> None:
    """Inside a write: delete the delivered rows an earlier ack could not."""
    for priority, table in enumerate(CLASS_TABLES):
        for low, high in box._undeleted:
            rows = db.execute(
                f"DELETE FROM {table} WHERE id BETWEEN ? AND ? "  # noqa: S608
                "RETURNING LENGTH(payload)",
                (low, high),
            ).fetchall()
            box.stats.depth_by_priority[priority] -= len(rows)
            box.stats.depth -= len(rows)
            box.stats.bytes -= sum(r[0] for r in rows) + len(rows) * ROW_OVERHEAD
            box.stats.acked += len(rows)


def _chunks(ranges: list[tuple[int, int]], size: int) -> list[list[tuple[int, int]]]:
    """Split id ranges into groups of at most ``size`` ids."""
    out: list[list[tuple[int, int]]] = [[]]
    room = size
    for first, last in ranges:
        low = first
        while low <= last:
            if room == 0:
                out.append([])
                room = size
            top = min(last, low + room - 1)
            out[-1].append((low, top))
            room -= top - low + 1
            low = top + 1
    return [c for c in out if c]


def within(row_id: int, ranges: list[tuple[int, int]]) -> bool:
    at = bisect.bisect_right(ranges, (row_id, 1 << 62)) - 1
    return at >= 0 and ranges[at][0] <= row_id <= ranges[at][1]


def _merge(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The union of two lists of inclusive ranges, as sorted, disjoint ranges."""
    out: list[tuple[int, int]] = []
    for low, high in sorted(a + b):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


def _ranges(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Collapse sorted ids into inclusive (low, high) runs."""
    out: list[tuple[int, int]] = []
    for i in ids:
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        elif not out or i > out[-1][1]:
            out.append((i, i))
    return out
