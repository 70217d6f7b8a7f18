"""The dead letters: events the broker refused or the outbox found damaged, and
input that never became an event, kept with their reason (what ``Outbox.reject``
and ``Outbox.dead_letter_input`` do), within ``dead_letter_max_bytes``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from tidegate.errors import BufferError_
from tidegate.outbox import segment_store
from tidegate.outbox.integrity import DAMAGED
from tidegate.outbox.routing import expires_after, route_topic, stored_topic
from tidegate.outbox.schema import CLASS_TABLES, ROW_OVERHEAD, SEGMENT_TABLES
from tidegate.outbox.segment import SegmentDamaged, decode

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox


class DeadInput(NamedTuple):
    """Input that never became an event, as the pipeline hands it to the outbox."""

    at: float
    stage: str
    reason: str
    source: str | None
    raw: bytes


def reject(
    box: Outbox,
    ids: Sequence[int],
    reason: str,
    stage: str = "publish",
    count_as: str = "",
    *,
    keep: bool = False,
    only_to: str | None = None,
) -> int:
    """Move rows to the dead-letter table with ``reason`` (and count them in the
    counter ``count_as``, if given); with ``keep``, copy them there (one of several
    uplinks cannot send them; the others still may): then ``only_to`` names that uplink,
    and the letter's route goes to it alone (a replay does not send it again to the
    uplinks that had it)."""
    if not ids:
        return 0
    db = box.db
    now = time.time()
    moved = size = counted_size = 0
    try:
        db.execute("BEGIN IMMEDIATE")
        segment_store.unpack_containing(db, ids, tracked=True)
        for row_id in ids:
            for priority, table in enumerate(CLASS_TABLES):
                # As bytes whatever type a damaged record says (a TEXT payload may not
                # even be UTF-8); the CRC as stored, so a replay cannot launder damage.
                columns = (
                    "source_id, route_id, CAST(payload AS BLOB), LENGTH(payload), "
                    "IIF(typeof(crc) = 'text', CAST(crc AS BLOB), crc)"
                )
                row = db.execute(
                    f"SELECT {columns} FROM {table} WHERE id = ?"  # noqa: S608 - constants
                    if keep
                    else f"DELETE FROM {table} WHERE id = ? RETURNING {columns}",  # noqa: S608
                    (row_id,),
                ).fetchone()
                if row is None:
                    continue
                box._rows_changed()
                source_id, route_id, payload, counted, crc = row
                source = db.execute(
                    "SELECT source FROM sources WHERE id = ?", (source_id,)
                ).fetchone()
                topic = box._route_topics.get(route_id)  # unknown: none (not replayable)
                if topic is not None and only_to is not None:
                    sent = route_topic(topic)
                    topic = stored_topic(sent, [only_to], expires_after(sent))
                db.execute(
                    "INSERT INTO dead_letters (at, stage, reason, source, topic, payload, crc) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        now,
                        stage,
                        reason,
                        source[0] if source else None,
                        topic,
                        payload,
                        crc,
                    ),
                )
                if not keep:
                    box.stats.depth_by_priority[priority] -= 1
                moved += 1
                size += len(payload or b"")  # NULL: a damaged header may say so
                counted_size += counted or 0
                break
        bound_dead_letters(box, db, size)
        if count_as:
            box._bump(db, count_as, moved)
        box._commit()
    except sqlite3.Error as exc:
        box._rollback()
        raise BufferError_(f"cannot move events to the dead-letter table: {exc}") from None
    if not keep:
        box.stats.depth -= moved
        box.stats.bytes -= counted_size + moved * ROW_OVERHEAD  # as recount counts it
    box.stats.dead_letters += moved
    box.stats.dead_letter_bytes += size
    box._sync_ledger()
    return moved


def reject_segment(box: Outbox, cls: int, seg: segment_store.Stored, reason: str) -> int:
    """Move a segment that failed its checks to the dead letters, as one letter holding
    its stored bytes (no topic: not replayable), counting its undelivered events as
    damaged. Returns how many events it held (0 if it is gone already: a purge)."""
    db = box.db
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            blob = segment_store.body(db, cls, seg.id)
        except SegmentDamaged:  # gone since take read it
            box._rollback()
            return 0
        # How many events it holds: its header says, if only its row was damaged.
        try:
            held = len(decode(blob))
        except SegmentDamaged:
            held = seg.last_id - seg.id + 1
        events = max(0, held - (seg.first - seg.id))
        # Its ids as they are (the ledger's trigger records them gone), then away.
        db.execute(
            f"UPDATE {SEGMENT_TABLES[cls]} SET last_id = ? WHERE id = ?",  # noqa: S608
            (seg.id + held - 1, seg.id),
        )
        segment_store.delete(db, cls, seg.id)
        db.execute(
            "INSERT INTO dead_letters (at, stage, reason, source, topic, payload, crc) "
            "VALUES (?, 'outbox', ?, NULL, NULL, ?, NULL)",
            (time.time(), f"{reason}: events {seg.first}-{seg.id + held - 1}", blob),
        )
        bound_dead_letters(box, db, len(blob))
        box._bump(db, DAMAGED, events)
        box._commit()
    except Exception as exc:
        box._rollback()
        if not isinstance(exc, sqlite3.Error):
            raise
        raise BufferError_(f"cannot move a damaged segment to the dead letters: {exc}") from None
    box._rows_changed()
    box.stats.dead_letters += 1
    box.stats.dead_letter_bytes += len(blob)
    box.recount()  # its row's own figures may have been damaged too
    box._sync_ledger()
    return events


def dead_letter_input(box: Outbox, letters: Sequence[DeadInput]) -> None:
    """Keep input that never became an event (a garbage frame, a failed parse)."""
    if not letters:
        return
    db = box.db
    size = sum(len(letter.raw) for letter in letters)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO dead_letters (at, stage, reason, source, topic, payload) "
            "VALUES (?, ?, ?, ?, NULL, ?)",
            letters,
        )
        bound_dead_letters(box, db, size)
        box._commit()
    except sqlite3.Error as exc:
        box._rollback()
        raise BufferError_(f"cannot write dead letters: {exc}") from None
    box.stats.dead_letters += len(letters)
    box.stats.dead_letter_bytes += size
    box._sync_ledger()


def bound_dead_letters(box: Outbox, db: sqlite3.Connection, adding: int) -> None:
    bound = box.limits.dead_letter_max_bytes
    if box._disk is not None:
        # On a small disk the dead letters must not take the room events need.
        bound = min(bound, box._disk.dead_letter_room)
    over = box.stats.dead_letter_bytes + adding - bound
    evicted = 0
    while over > 0:
        rows = db.execute(
            "DELETE FROM dead_letters WHERE id IN "
            "(SELECT id FROM dead_letters ORDER BY id LIMIT 100) RETURNING LENGTH(payload)"
        ).fetchall()
        if not rows:
            break
        size = sum(r[0] or 0 for r in rows)
        over -= size
        evicted += len(rows)
        box.stats.dead_letters -= len(rows)
        box.stats.dead_letter_bytes -= size
    box._bump(db, "dead_letters_evicted", evicted)
