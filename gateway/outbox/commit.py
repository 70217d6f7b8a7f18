"""Committing events: what ``Outbox.put`` does.

A batch is accepted when its transaction commits, and only then. It is stored
as one segment per priority class (``tidegate.outbox.segment_store``). The same
transaction assigns each event its per-source ``seq`` (above the ledger's
reserved mark only after raising it: ``tidegate.outbox.ledger.file``), so
``seq`` survives restarts and has no gaps among accepted events; it deletes
delivered rows an earlier ack could not (``tidegate.outbox.delivery``), makes
room as ``when_full`` says (``tidegate.outbox.bound``), and applies the
memory drops noted since the last commit. The in-memory figures and the
ledger follow only once it committed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tidegate.errors import BufferError_
from tidegate.outbox import segment_store
from tidegate.outbox.bound import Fitted, make_room, refresh_bound
from tidegate.outbox.delivery import Row, delete_undeleted
from tidegate.outbox.limits import OutboxFull
from tidegate.outbox.routing import stored_topic
from tidegate.outbox.schema import (
    ACCEPTED_TOTAL,
    MEMORY_APPLIED,
    NEXT_ID,
    ROW_OVERHEAD,
)
from tidegate.payload import encode_event
from tidegate.wording import count

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox
    from tidegate.outgoing import Outgoing

def put(box: Outbox, items: Sequence[Outgoing]) -> int:
    """Commit ``items``; when this returns they are accepted (or counted as dropped).

    Returns how many were stored. Raises OutboxFull (``when_full: block``)
    when they do not fit, BufferError_ when SQLite fails (a full disk):
    nothing of ``items`` is stored then, and the caller keeps them.
    """
    if not items:
        return 0
    db = box.db
    stats = box.stats
    added_sources: set[str] = set()
    added_routes: set[tuple[str, int, bool]] = set()
    try:
        db.execute("BEGIN IMMEDIATE")
        # Inside the transaction: an admin write cannot slip in between.
        box._sync_with_admin_changes()
        now = time.time()
        synced = box.clock.trusted
        seqs = dict(box._last_seq)  # kept only if the transaction commits
        gateway = box.gateway
        known_sources, known_routes = box._source_ids, box._route_ids
        payloads = []
        incoming = 0
        for event, topic, qos, retain, _, uplinks, expire_after in items:
            source = event.source
            seq = seqs.get(source, 0) + 1
            seqs[source] = seq
            if source not in known_sources:
                added_sources.add(source)
            if uplinks or expire_after is not None:
                topic = stored_topic(topic, uplinks, expire_after)  # noqa: PLW2901
            if (topic, qos, retain) not in known_routes:
                added_routes.add((topic, qos, retain))
            payload = encode_event(event, seq, gateway, synced=synced)
            payloads.append(payload)
            incoming += len(payload)
        incoming += len(items) * ROW_OVERHEAD
        if box._ledger.needs_reservation(seqs):
            reserve_seqs(box, seqs)
        if box._undeleted:
            delete_undeleted(box, db)
        refresh_bound(box, incoming)
        fitted = Fitted(items, payloads, len(items), incoming, seqs)
        over = stats.bytes + incoming - stats.max_bytes
        if over > 0:
            fitted = make_room(box, db, fitted, over)
        items, payloads, keep, incoming, seqs = fitted
        for source in added_sources:
            box._source_id(source)
        for route in added_routes:
            box._route_id(route)
        # Rows for memory only if they fit there (a publisher far behind reads the file).
        kept = box._fresh.fits(keep, incoming)
        by_class, row_id, fresh = _insert(
            box, db, items[:keep], payloads[:keep], now=now, synced=synced, kept=kept
        )
        db.executemany(
            "UPDATE sources SET last_seq = ? WHERE id = ?",
            [(n, box._source_ids[s]) for s, n in seqs.items() if box._last_seq.get(s) != n],
        )
        memory = box._memory_noted - box._memory_applied
        box._bump(db, "dropped_memory", memory)
        db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)",
            [
                (NEXT_ID, row_id),
                (ACCEPTED_TOTAL, box._accepted_total + keep),
                *([(MEMORY_APPLIED, box._memory_noted)] if memory else []),
            ],
        )
        box._commit()
    except OutboxFull:
        box._rollback()
        raise
    except BaseException as exc:
        box._rollback()
        box._forget(added_sources, added_routes)
        with contextlib.suppress(sqlite3.Error):
            box.recount()  # drops inside the failed transaction did not happen
        if isinstance(exc, sqlite3.Error):
            box._release_if_full(exc)  # the next try (the pipeline's) has room to drop
            raise BufferError_(
                f"cannot commit {count(len(items), 'event')} to the outbox: {exc}"
            ) from None
        raise
    box._next_id = row_id
    if kept:
        box._fresh.add(fresh, row_id - 1)
    else:
        box._fresh.forget(row_id - 1)
    box._last_seq = seqs
    box._accepted_total += keep
    if box._undeleted:
        box._undeleted = []
        stats.undeleted = 0
    if memory:
        box._memory_applied = box._memory_noted
        stats.pending_drops.pop("dropped_memory", None)
    for priority, n in enumerate(by_class):
        stats.depth_by_priority[priority] += n
    stats.depth += keep
    stats.bytes += incoming
    stats.accepted += keep
    stats.commits += 1
    box._sync_ledger()
    if box._disk is not None and not box._disk.has_reserve:
        box._disk.ensure_reserve()
    return keep


def _insert(
    box: Outbox,
    db: sqlite3.Connection,
    items: Sequence[Outgoing],
    payloads: list[bytes],
    *,
    now: float,
    synced: bool,
    kept: bool,
) -> tuple[list[int], int, list[Row]]:
    """Store the events as one segment per class (``tidegate.outbox.segment_store``),
    each class's ids contiguous. Returns how many each class got, the next row id,
    and the rows as ``take`` hands them out (kept in memory: ``tidegate.outbox.fresh``)."""
    source_ids, route_ids = box._source_ids, box._route_ids
    by_class: list[list[int]] = [[], [], []]
    for i, outgoing in enumerate(items):
        by_class[outgoing.priority].append(i)
    fresh: list[Row] = []
    row_id = box._next_id
    for priority, members in enumerate(by_class):
        if not members:
            continue
        routes = []
        for i in members:
            outgoing = items[i]
            topic = outgoing.topic
            if outgoing.uplinks or outgoing.expire_after is not None:
                topic = stored_topic(topic, outgoing.uplinks, outgoing.expire_after)
            routes.append(route_ids[(topic, outgoing.qos, outgoing.retain)])
            if kept:
                sent = box._routes[routes[-1]]  # the topic as sent: without its uplinks
                fresh.append(Row(row_id + len(routes) - 1, *sent, payloads[i], priority))
        segment_store.insert(
            db,
            priority,
            row_id,
            [payloads[i] for i in members],
            routes=routes,
            sources=[source_ids[items[i].event.source] for i in members],
            accepted=now,
            synced=synced,
            boot=box._boot_row,
        )
        row_id += len(members)
    return [len(m) for m in by_class], row_id, fresh


def reserve_seqs(box: Outbox, seqs: dict[str, int]) -> None:
    """Make the ledger's marks cover ``seqs`` before any of them is committed."""
    try:
        box._ledger.reserve(seqs)
    except OSError as exc:
        raise BufferError_(
            f"cannot reserve seqs in the outbox ledger {box._ledger.path}: {exc}"
        ) from None


def note_memory_drops(box: Outbox, n: int) -> None:
    """Events dropped outside the outbox (memory full while commits fail): counted at
    once (``stats.pending_drops``, and the ledger, written in place: a full disk
    does not stop it), and in the file with the next commit."""
    if n <= 0:
        return
    box._memory_noted += n
    box.stats.pending_drops["dropped_memory"] = box._memory_noted - box._memory_applied
    box._sync_ledger()
