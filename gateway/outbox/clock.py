"""The outbox and the wall clock: purging by age, correcting after a clock step.

Both work on the ``Outbox``'s tables inside one transaction each, and only on
what the clock can vouch for: an event's age is known only if its time was
taken on a trusted clock (or corrected since), and a step is applied only to
the events of the boot it was measured in, and only to times the gateway's clock
made: a device's own time (``"time_source": "device"``) was right and stays.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import orjson

from tidegate.errors import BufferError_
from tidegate.outbox import segment_store
from tidegate.outbox.bound import drop_oldest
from tidegate.outbox.deletes import drop
from tidegate.outbox.integrity import checksum, intact
from tidegate.outbox.schema import CLASS_TABLES, ROW_OVERHEAD, SEGMENT_TABLES
from tidegate.outbox.segment import SegmentDamaged
from tidegate.timefmt import rfc3339

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox


def purge_expired(box: Outbox, now: float) -> int:
    """Drop events older than ``max_age`` (oldest first); only on a trusted clock."""
    max_age = box.limits.max_age
    if max_age is None or not box.clock.trusted:
        return 0
    cutoff = now - max_age
    db = box.db
    dropped = 0
    try:
        db.execute("BEGIN IMMEDIATE")
        for priority in range(len(CLASS_TABLES)):
            while True:
                gone, size = _expire_head(box, db, priority, cutoff)
                if not gone:
                    break
                box._rows_changed()
                box.stats.depth_by_priority[priority] -= gone
                box.stats.depth -= gone
                box.stats.bytes -= size
                dropped += gone
        box._bump(db, "dropped_expired", dropped)
        box._commit()
    except sqlite3.Error as exc:
        box._rollback()
        with contextlib.suppress(sqlite3.Error):
            box.recount()
        raise BufferError_(f"cannot purge expired events: {exc}") from None
    if dropped:
        box._sync_ledger()
    return dropped


def _expired(box: Outbox, accepted: float, synced: int, boot: int, cutoff: float) -> bool:
    # An untrusted time from an earlier boot was never corrected: its age is unknown,
    # so it is never purged by age.
    return accepted < cutoff and bool(synced or boot == box._boot_row)


def _expire_head(box: Outbox, db: sqlite3.Connection, cls: int, cutoff: float) -> tuple[int, int]:
    """Drop the class's oldest events while they are expired: a whole segment, or rows
    up to the next segment. Returns (events, bytes as ``max_bytes`` counts them)."""
    # Acceptance order is id order: the expired events are a prefix. A clock that
    # stepped back ends the prefix early: purge less, never more.
    table = CLASS_TABLES[cls]
    seg = segment_store.first(db, cls)
    below = (1 << 62) if seg is None else seg.first
    head = db.execute(
        f"SELECT id, accepted, synced, boot_id FROM {table} WHERE id < ? "  # noqa: S608
        "ORDER BY id LIMIT 1000",
        (below,),
    ).fetchall()
    if not head:
        if seg is None:
            return 0, 0
        accepted, synced, boot = db.execute(
            f"SELECT accepted, synced, boot_id FROM {SEGMENT_TABLES[cls]} WHERE id = ?",  # noqa: S608
            (seg.id,),
        ).fetchone()
        if not _expired(box, accepted, synced, boot, cutoff):
            return 0, 0
        size = segment_store.undelivered_size(db, cls, seg) + seg.events * ROW_OVERHEAD
        segment_store.delete(db, cls, seg.id)
        return seg.events, size
    last = None
    for row_id, accepted, synced, boot in head:
        if not _expired(box, accepted, synced, boot, cutoff):
            break
        last = row_id
    if last is None:
        return 0, 0
    rows = db.execute(
        f"DELETE FROM {table} WHERE id <= ? RETURNING LENGTH(payload)",  # noqa: S608
        (last,),
    ).fetchall()
    return len(rows), sum(r[0] for r in rows) + len(rows) * ROW_OVERHEAD


def correct_clock(box: Outbox, delta: float) -> int:
    """Shift this boot's undelivered events by a measured wall-clock step.

    Their acceptance time moves by ``delta`` and counts as synced. Their ``time``
    (in the payload) moves too, unless the device gave it (``time_source:
    "device"``): the payload loses ``time_synced: false`` and gains
    ``time_corrected: true``, and a new checksum. A device's time and its payload
    stay as they are. A payload that fails its checksum is left as it is (a new
    checksum would make damage look sound): ``take`` dead-letters it. Returns how
    many events' times were corrected.
    """
    db = box.db
    corrected = 0
    try:
        db.execute("BEGIN IMMEDIATE")
        corrected = _correct_segments(box, db, delta)
        for table in CLASS_TABLES:
            rows = db.execute(
                f"SELECT id, payload, crc FROM {table} WHERE boot_id = ?",  # noqa: S608
                (box._boot_row,),
            ).fetchall()
            updates = []
            kept = []
            for row_id, payload, crc in rows:
                if not intact(payload, crc):
                    continue
                shifted = _shift_payload(payload, delta)
                if shifted is None:
                    kept.append((delta, row_id))  # acceptance was still on the old clock
                    continue
                new_crc = None if crc is None else checksum(shifted)
                updates.append((shifted, new_crc, delta, row_id))
            db.executemany(
                f"UPDATE {table} SET payload = ?, crc = ?, accepted = accepted + ?, "  # noqa: S608
                "synced = 1 WHERE id = ?",
                updates,
            )
            db.executemany(
                f"UPDATE {table} SET accepted = accepted + ?, synced = 1 WHERE id = ?",  # noqa: S608
                kept,
            )
            corrected += len(updates)
        box._rows_changed()
        box._resized_below = box._next_id
        box._bump(db, "clock_corrections", 1)
        box._commit()
    except sqlite3.Error as exc:
        box._rollback()
        raise BufferError_(f"cannot correct timestamps after a clock step: {exc}") from None
    with contextlib.suppress(sqlite3.Error):
        box.recount()  # payload sizes changed by a few bytes
        _back_within_bound(box)
    return corrected


def _back_within_bound(box: Outbox) -> None:
    """Corrected payloads are a few bytes longer: an outbox that was full drops its
    oldest events to fit again (counted), as its next commit would have."""
    over = box.stats.bytes - box.stats.max_bytes
    if over <= 0 or box.limits.when_full == "block":
        return
    db = box.db
    try:
        db.execute("BEGIN IMMEDIATE")
        dropped, _ = drop_oldest(box, db, over, down_to=0)
        box._bump(db, "dropped_full", dropped)
        box._commit()
    except sqlite3.Error:
        box._rollback()
        box.recount()
        return
    box._sync_ledger()


def _correct_segments(box: Outbox, db: sqlite3.Connection, delta: float) -> int:
    """This boot's segments, rewritten in place (a segment stays one row: a backlog
    of days held offline is not turned into a row per event). Their delivered
    prefixes and damaged events stay as they are, with their stored checksums."""
    corrected = 0
    for cls in range(len(SEGMENT_TABLES)):
        for seg in segment_store.of_boot(db, cls, box._boot_row):
            try:
                decoded = segment_store.read(db, cls, seg.id)
            except SegmentDamaged:
                continue  # take dead-letters it whole
            payloads, crcs = [], list(decoded.crcs)
            for i in range(len(decoded)):
                payload = decoded.payload(i)
                if i >= seg.first - seg.id and decoded.intact(i):
                    shifted = _shift_payload(payload, delta)
                    if shifted is not None:
                        payload, crcs[i] = shifted, checksum(shifted)
                        corrected += 1
                payloads.append(payload)
            segment_store.rewrite(db, cls, seg.id, payloads, decoded, crcs=crcs, shift=delta)
    return corrected


def _shift_payload(payload: bytes, delta: float) -> bytes | None:
    """The payload with its time moved by ``delta``; None when the device gave the time."""
    try:
        doc = orjson.loads(payload)
        if doc.get("time_source") == "device":
            return None
        doc["time"] = rfc3339(datetime.fromisoformat(doc["time"]).timestamp() + delta)
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return payload  # not ours to fix: leave it as it is
    doc.pop("time_synced", None)
    doc["time_corrected"] = True
    return orjson.dumps(doc)


ROUTE_EXPIRED = "dropped_route_expired"
"""Counter: events older than their route's ``expire_after`` when they would be sent."""
UPLINK_MAX_AGE = "dropped_uplink_max_age"
"""Counter: events older than the (one) uplink's ``max_event_age`` when it would send them."""


def drop_route_expired(box: Outbox, ids: Sequence[int], counter: str = ROUTE_EXPIRED) -> int:
    """Delete events their route (or the one uplink's ``max_event_age``) says are no
    longer worth sending, judged by the publisher on a trusted clock, counting them in
    ``counter`` in the same transaction. Returns how many went."""
    return drop(box, ids, counter)
