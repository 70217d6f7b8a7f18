"""Handing out undelivered events and deleting delivered ones: what ``Outbox.take``
and ``Outbox.ack`` do.

``take`` returns the oldest undelivered rows, highest priority class first, after
per-class cursors (rows already handed out are not handed out twice; after a
reconnect the publisher starts again from the oldest). Each row's checksum is
verified first (``tidegate.outbox.integrity``): damage is dead-lettered, never sent.

A delete writes about as much WAL as the rows took: a backlog acknowledged in
one go would need a WAL as large as the backlog. Deletes therefore run in
chunks whose WAL fits within one checkpoint (``tidegate.outbox.disk``), each
its own transaction. If a delete still fails (a disk full even after the
reserve was released), the delivered ids are not forgotten: they are kept in
memory and in the ledger, never handed to the publisher again (not after a
reconnect, nor after a restart), and every later ack and commit deletes them.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, NamedTuple

from tidegate.errors import BufferError_
from tidegate.outbox import segment_reader, segment_store
from tidegate.outbox.dead import reject_segment
from tidegate.outbox.deletes import (
    ack_chunk,
    chunks,
    delete_chunks,
    merge,
    ranges_of,
    within,
)
from tidegate.outbox.integrity import (
    CHECKSUM_MISMATCH,
    CHECKSUM_MISSING,
    DAMAGED,
    UNKNOWN_ROUTE,
    WRONG_TYPE,
    checksum,
)
from tidegate.outbox.schema import CLASS_TABLES, CRC_FROM_ID, ROW_OVERHEAD
from tidegate.wording import count

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox

# Logged as the store, wherever its code lives: what users see stays the same.
log = logging.getLogger("tidegate.outbox.store")


class Row(NamedTuple):
    """An undelivered event as ``take`` hands it to the publisher."""

    id: int
    topic: str
    qos: int
    retain: bool
    payload: bytes
    priority: int


def take(box: Outbox, limit: int, cursors: Sequence[int] = (0, 0, 0)) -> list[Row]:
    """Up to ``limit`` undelivered rows, highest class first, each class oldest
    first from after its cursor (``cursors[priority]`` is the last id handed out)."""
    out: list[Row] = []
    damaged: dict[str, list[int]] = {}
    bad_segments: list[tuple[int, segment_store.Stored, str]] = []
    try:
        box._sync_with_admin_changes()  # a replay may have added routes
        fresh = box._fresh
        for priority in range(len(CLASS_TABLES)):
            after = cursors[priority]
            if fresh.serves(priority, after):
                # Never read back from the file: nothing to check (``tidegate.outbox.fresh``).
                out += fresh.pop(priority, after, limit - len(out))
                continue
            start = len(out)
            while len(out) < limit:
                want = limit - len(out)
                read = _read_class(box, priority, after, want, bad_segments)
                if isinstance(read, segment_reader.Events):
                    _check_packed(box, read.chunks, priority, out, damaged)
                    last = read.last_id()
                    ids = [] if last is None else [last]
                    got = len(read)
                else:
                    _check_rows(box, read, priority, out, damaged)
                    ids = [r[0] for r in read[-1:]]
                    got = len(read)
                if ids:
                    fresh.handed_out(priority, ids[0])
                if got < want:
                    fresh.caught_up(priority, ids[0] if ids else after)
                    break
                after = ids[0]
            fresh.took(priority, cursors[priority], out[start:])
    except sqlite3.Error as exc:
        raise BufferError_(f"cannot read undelivered events from the outbox: {exc}") from None
    for reason, ids in damaged.items():
        moved = box.reject(ids, reason, stage="outbox", count_as=DAMAGED)
        log.error(
            "%s failed a check (%s): moved to dead letters", count(moved, "stored event"), reason
        )
    for cls, seg, reason in bad_segments:
        moved = reject_segment(box, cls, seg, reason)
        log.error(
            "a stored segment of %s failed a check (%s): moved to dead letters",
            count(moved, "event"),
            reason,
        )
    return out


def _check_rows(
    box: Outbox,
    rows: list[tuple[int, int, bytes, int | None, bool, bool]],
    priority: int,
    out: list[Row],
    damaged: dict[str, list[int]],
) -> None:
    """Rows read back, checked before they can be published: damage is never sent as data."""
    routes = box._routes
    for i, r, p, crc, typed, unsummed in rows:
        if box._undeleted and within(i, box._undeleted):
            continue  # delivered already; only its delete is pending
        if not typed:
            damaged.setdefault(WRONG_TYPE, []).append(i)
        elif unsummed:  # stored with a checksum that now reads NULL
            damaged.setdefault(CHECKSUM_MISSING, []).append(i)
        elif crc is not None and checksum(p) != crc:
            damaged.setdefault(CHECKSUM_MISMATCH, []).append(i)
        elif r not in routes:
            damaged.setdefault(UNKNOWN_ROUTE, []).append(i)
        else:
            out.append(Row(i, *routes[r], p, priority))


def _check_packed(
    box: Outbox,
    chunks: list[segment_reader.Chunk],
    priority: int,
    out: list[Row],
    damaged: dict[str, list[int]],
) -> None:
    """Events of segments that passed their own checks: each payload's checksum and
    route are checked too."""
    routes = box._routes
    undeleted = box._undeleted
    new = tuple.__new__  # Row's own constructor is Python code: ~15 % of a drain
    for chunk in chunks:
        events, a, b = chunk.events, chunk.start, chunk.stop
        ids = range(chunk.id + a, chunk.id + b)
        route_ids = events.routes[a:b]
        payloads = events.payloads[a:b]
        if undeleted or events.mismatched or not routes.keys() >= set(route_ids):
            for i, r, p in zip(ids, route_ids, payloads, strict=True):
                if undeleted and within(i, undeleted):
                    continue  # delivered already; only its delete is pending
                route = routes.get(r)
                if route is None:
                    damaged.setdefault(UNKNOWN_ROUTE, []).append(i)
                elif i - chunk.id in events.mismatched:
                    damaged.setdefault(CHECKSUM_MISMATCH, []).append(i)
                else:
                    out.append(new(Row, (i, route[0], route[1], route[2], p, priority)))
            continue
        # The common case in C loops: every event intact, on a known route.
        on = list(map(routes.__getitem__, route_ids))
        out += map(
            new,
            repeat(Row),
            zip(ids, *zip(*on, strict=True), payloads, repeat(priority), strict=False),
        )


def _read_class(
    box: Outbox,
    cls: int,
    after: int,
    want: int,
    bad_segments: list[tuple[int, segment_store.Stored, str]],
) -> list[tuple[int, int, bytes, int | None, bool, bool]] | segment_reader.Events:
    """Up to ``want`` stored events of the class after ``after``, rows and segments
    merged in id order: (id, route id, payload, crc, typed, unsummed); only segments'
    events as they came if the class has no rows there."""
    # A damaged header byte can make any value another type (a TEXT payload may not
    # even be UTF-8): read as bytes, and typed checked.
    rows: list[tuple[int, int, bytes, int | None, bool, bool]] = box.db.execute(
        "SELECT id, route_id, CAST(payload AS BLOB), IIF(typeof(crc) = "  # noqa: S608
        "'integer', crc, NULL), typeof(payload) = 'blob' AND typeof(route_id) "
        "= 'integer' AND typeof(crc) IN ('integer', 'null'), crc IS NULL AND "
        "id >= (SELECT value FROM counters WHERE name = ?) "
        f"FROM {CLASS_TABLES[cls]} WHERE id > ? ORDER BY id LIMIT ?",
        (CRC_FROM_ID, after, want),
    ).fetchall()
    packed = segment_reader.read_after(box.db, cls, after, want, box._decoded)
    for seg, reason in packed.damaged:
        if all(seg.id != s.id for _, s, _ in bad_segments):
            bad_segments.append((cls, seg, reason))
    if not rows:
        return packed  # checked on their own path (the common case: no rows at all)
    if not packed.chunks:
        return rows
    merged: list[tuple[int, int, bytes, int | None, bool, bool]] = [
        (i, r, p, crc, True, False) for i, r, p, crc in packed.rows()
    ]
    if not rows:
        return merged
    return list(heapq.merge(rows, merged, key=lambda row: row[0]))[:want]


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
    ranges = ranges_of(id_list)
    box._fresh.delivered(ranges)  # even if the delete below fails
    if id_list and id_list[0] < box._resized_below:
        payload_bytes = None  # sent before a clock correction resized them
    if box._undeleted:
        ranges = merge(ranges, box._undeleted)
        payload_bytes = None
    if not ranges:
        return 0
    pieces = chunks(ranges, ack_chunk(box))
    sized = payload_bytes is None  # else the publisher's figure is subtracted at the end
    try:
        deleted, retried = delete_chunks(box, pieces, sized=sized)
    except sqlite3.Error as exc:
        box._undeleted = [r for chunk in pieces for r in chunk]
        box.stats.undeleted = sum(high - low + 1 for low, high in box._undeleted)
        box._sync_ledger()
        raise BufferError_(f"cannot delete delivered events from the outbox: {exc}") from None
    if retried:
        payload_bytes = None  # counted again from the tables (below)
    if not sized:
        if payload_bytes is not None and deleted == len(id_list):
            box.stats.bytes -= payload_bytes + deleted * ROW_OVERHEAD
        else:
            # Rows dropped while in flight (their size is gone already), or a chunk
            # failed and was tried again.
            with contextlib.suppress(sqlite3.Error):
                box.recount()
    if box._undeleted:
        box._undeleted = []
        box.stats.undeleted = 0
    box._sync_ledger()
    return deleted


def delete_undeleted(box: Outbox, db: sqlite3.Connection) -> None:
    """Inside a write: delete the delivered rows an earlier ack could not."""
    for priority, table in enumerate(CLASS_TABLES):
        n, size = segment_store.deliver(db, priority, box._undeleted, sized=True, tracked=True)
        box.stats.depth_by_priority[priority] -= n
        box.stats.depth -= n
        box.stats.bytes -= size + n * ROW_OVERHEAD
        box.stats.acked += n
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
