"""Deleting stored events by id: a delivery's acknowledgement (``tidegate.outbox.delivery``)
and a drop of events that were not delivered (``drop``: past their route's expiry or an
uplink's age bound, or refused by every uplink they go to).

A delete writes about as much WAL as the rows took, so a long list of ids is deleted
in chunks whose WAL fits within one checkpoint (``tidegate.outbox.disk``), each chunk
one transaction with its count: a retry after a failure counts nothing twice.
"""

from __future__ import annotations

import bisect
import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import compress
from operator import sub
from typing import TYPE_CHECKING

from tidegate.errors import BufferError_
from tidegate.outbox import segment_store
from tidegate.outbox.schema import CLASS_TABLES, ROW_OVERHEAD

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox


def drop(box: Outbox, ids: Iterable[int], counter: str | None) -> int:
    """Delete events that were not delivered, counting them in ``counter`` in the same
    transaction (None: not a drop; the dead letters keep them). Returns how many went
    (an id already gone counts nothing)."""
    ranges = ranges_of(sorted(ids))
    if not ranges:
        return 0
    box._fresh.delivered(ranges)  # never handed out again, wherever the delete stands
    pieces = chunks(ranges, ack_chunk(box))
    try:
        deleted, _ = delete_chunks(box, pieces, sized=True, delivered=False, counter=counter)
    except sqlite3.Error as exc:
        raise BufferError_(f"cannot drop events from the outbox: {exc}") from None
    finally:
        box._sync_ledger()
    return deleted


def delete_chunks(
    box: Outbox,
    pieces: list[list[tuple[int, int]]],
    *,
    sized: bool,
    delivered: bool = True,
    counter: str | None = None,
) -> tuple[int, bool]:
    """Delete ``pieces`` (from ``chunks``), one transaction each (``delete_ranges``),
    taking each out of the list once it is done: on a failure the list holds what was
    not deleted. A full disk gives back the reserve and tries the chunk again. Returns
    how many went, and whether a chunk was tried again (its sizes then come from the
    tables, not the caller's figure)."""
    deleted = 0
    retried = False
    while pieces:
        try:
            deleted += delete_ranges(
                box, pieces[0], sized=sized, delivered=delivered, counter=counter
            )
        except sqlite3.Error as exc:
            if not box._release_if_full(exc):
                raise
            retried = True
            deleted += delete_ranges(
                box, pieces[0], sized=sized, delivered=delivered, counter=counter
            )
        pieces.pop(0)
        if pieces and box._disk is not None:
            # Back to back, chunks outrun the automatic checkpoint: a WAL that only
            # grows is what the chunks are cut to avoid on a small disk.
            with contextlib.suppress(sqlite3.Error):  # a later one catches up
                box.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    return deleted, retried


def ack_chunk(box: Outbox) -> int:
    """Rows per delete transaction: one transaction's WAL must fit beside the outbox
    (a delivered backlog is acknowledged in large batches)."""
    if box._disk is None:
        return 1 << 30
    depth = box.stats.depth
    return box._disk.ack_chunk(box.stats.bytes / depth if depth else 300.0)


def delete_ranges(
    box: Outbox,
    ranges: list[tuple[int, int]],
    *,
    sized: bool,
    delivered: bool = True,
    counter: str | None = None,
) -> int:
    """One delete transaction: the events in ``ranges``, segments and rows. Counts them
    (and their bytes, if ``sized``: else the caller does) as acknowledged if
    ``delivered``, and in the counter ``counter`` if given."""
    db = box.db
    deleted = size = 0
    try:
        db.execute("BEGIN IMMEDIATE")
        for priority, table in enumerate(CLASS_TABLES):
            # Segments first: whole ones go, a prefix moves its position, anything else
            # becomes rows, deleted below.
            gone, length = segment_store.deliver(db, priority, ranges, sized=sized, tracked=True)
            size += length
            for low, high in ranges:
                if sized:
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
            box.stats.depth_by_priority[priority] -= gone
            deleted += gone
        if counter is not None:
            box._bump(db, counter, deleted)
        box._commit()
    except sqlite3.Error:
        box._rollback()
        with contextlib.suppress(sqlite3.Error):
            box.recount()
        raise
    if delivered:
        box.stats.acked += deleted
    box.stats.depth -= deleted
    if sized:
        box.stats.bytes -= size + deleted * ROW_OVERHEAD
    return deleted


def chunks(ranges: list[tuple[int, int]], size: int) -> list[list[tuple[int, int]]]:
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


def merge(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The union of two lists of inclusive ranges, as sorted, disjoint ranges."""
    out: list[tuple[int, int]] = []
    for low, high in sorted(a + b):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


def ranges_of(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Collapse sorted ids into inclusive (low, high) runs (in C loops: the breaks
    between runs are found by ``compress``, an acknowledged backlog has few)."""
    if not ids:
        return []
    steps = list(map(sub, ids[1:], ids[:-1]))
    out: list[tuple[int, int]] = []
    low = ids[0]
    for k in compress(range(len(steps)), map((1).__ne__, steps)):
        if steps[k]:  # not a repeated id
            out.append((low, ids[k]))
            low = ids[k + 1]
    out.append((low, ids[-1]))
    return out
