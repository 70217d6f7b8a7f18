"""Keeping the outbox file and its ledger in step: at open, and after every commit.

At open (``reconcile_at_open``): the file is compared with its ledger
(``tidegate.outbox.ledger.reconcile`` decides), the decision is applied to the file
in one transaction (counters raised, losses counted, seq marks raised, the
file's random id written if it has none yet), the loss is logged in one line,
and the ledger is rewritten (durably: "open, not closed" must survive a power
cut).

After every commit, ack or other change (``snapshot_to_ledger``): the
ledger's copy of the outbox's state is brought up to date in memory, including
the description of the undelivered rows (``tidegate.outbox.ledger.undelivered``);
the outbox then rewrites the ledger in place.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
from typing import TYPE_CHECKING

from tidegate.errors import BufferError_
from tidegate.outbox.ledger.file import Ledger, LedgerState, LoadStatus
from tidegate.outbox.ledger.reconcile import PURGED, FileFacts, reconcile
from tidegate.outbox.ledger.undelivered import count_present, install
from tidegate.outbox.recovery import Recreated
from tidegate.outbox.schema import (
    ACCEPTED_TOTAL,
    INTERNAL_COUNTERS,
    MEMORY_APPLIED,
    NEXT_ID,
    OUTBOX_ID,
)

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox

log = logging.getLogger("tidegate.outbox")


def load_usable(ledger: Ledger) -> LoadStatus:
    """Read the ledger at open. One that exists but cannot be read or written (its
    permissions, an I/O error) is not damage: its marks may be fine. The start is
    refused (BufferError_, one line), as for a locked outbox, before anything is
    counted: a loss counted in the file but not in the ledger would be counted again."""
    status = ledger.load()
    if status == "unreadable":
        raise BufferError_(
            f"cannot read the outbox ledger {ledger.path}: {ledger.error}; "
            "the gateway does not start without it"
        )
    if status == "ok":
        try:
            ledger.open()
        except OSError as exc:
            raise BufferError_(
                f"cannot write the outbox ledger {ledger.path}: {exc.strerror}; "
                "the gateway does not start without it"
            ) from None
    return status


def set_counter(db: sqlite3.Connection, name: str, value: int) -> None:
    """Raise a counter to ``value`` (never lower it) inside the caller's transaction."""
    db.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)",
        (name, value),
    )


def new_outbox_id() -> int:
    """Random, positive, and fits SQLite's INTEGER."""
    return secrets.randbits(62) | 1


def reconcile_at_open(box: Outbox, status: LoadStatus, recreated: Recreated | None) -> None:
    """Compare the file with its ledger; count and report a loss; never reuse a seq."""
    db = box.db
    ledger = box._ledger
    install(db)
    row = db.execute("SELECT value FROM counters WHERE name = ?", (ACCEPTED_TOTAL,)).fetchone()
    file_id = box._read_counter(db, OUTBOX_ID)
    described = ledger.state.undelivered
    present = None
    cut = (
        status == "ok"
        and recreated is None
        and described is not None
        and file_id == ledger.state.outbox_id
        and box._next_id < described.next_id
    )
    if cut:
        assert described is not None
        # The file lost commits: which of the ledger's undelivered rows does it still have?
        present = count_present(db, described, ledger.state.undeleted)
    facts = FileFacts(
        recreated,
        dict(box._last_seq),
        None if row is None else int(row[0]),
        box._memory_applied,
        outbox_id=file_id,
        next_id=box._next_id,
        present=present,
        purged=box.stats.drops.get(PURGED, 0),
    )
    plan = reconcile(
        status,
        ledger.state,
        facts,
        boot=box.clock.boot_id,
        durability=box.durability,
        path=str(box.path),
    )
    if plan.level is not None:
        getattr(log, plan.level)("%s", plan.message)
        box.stats.recovery = plan
    state = ledger.state if status == "ok" else LedgerState(reserved=dict(plan.marks))
    noted = max(state.memory_noted, plan.memory_applied)
    db.execute("BEGIN IMMEDIATE")
    try:
        for name, value in plan.floor.items():
            if name not in INTERNAL_COUNTERS and value > box.stats.drops.get(name, 0):
                set_counter(db, name, value)
        for name, n in plan.bump.items():
            box._bump(db, name, n)
        # Memory drops noted in the ledger while the disk was full: counted now.
        box._bump(db, "dropped_memory", noted - plan.memory_applied)
        # Written only when they change: an open must not need to write (full disk).
        if plan.accepted != facts.accepted:
            set_counter(db, ACCEPTED_TOTAL, plan.accepted)
        if noted != box._memory_applied:
            set_counter(db, MEMORY_APPLIED, noted)
        if cut:
            # Row ids never go back either: the lost commits' ids are not used again, and
            # an open that fails after this commit does not count the same loss twice.
            assert described is not None
            set_counter(db, NEXT_ID, described.next_id)
        given_id = not file_id
        if given_id:  # a new file (or one from before ids): ties it to this ledger
            file_id = new_outbox_id()
            db.execute("INSERT INTO counters (name, value) VALUES (?, ?)", (OUTBOX_ID, file_id))
        db.executemany(
            "INSERT INTO sources (source, last_seq) VALUES (?, ?) ON CONFLICT(source) "
            "DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
            list(plan.marks.items()),
        )
        box._commit()
    except BaseException:
        box._rollback()
        raise
    if given_id:
        # Into the file itself (a checkpoint syncs it), not only its log: a log cut later
        # must not take the id with it and make the file look like another outbox.
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    box._uncommitted.clear()
    box._read_drops(db)
    box._load_ids(db)
    box._accepted_total = plan.accepted
    box._memory_noted = box._memory_applied = noted
    box.opened_after_clean_stop = status == "ok" and state.clean
    state.clean = False
    state.boot = box.clock.boot_id
    state.outbox_id = file_id
    # Delivered rows whose delete failed before the stop: still not to be sent again,
    # if the file is the one they belong to (after a loss, ids may be reused).
    intact = (
        status == "ok" and recreated is None and plan.same_file and plan.lost == 0
    ) and not plan.marks
    box._undeleted = list(state.undeleted) if intact else []
    box.stats.undeleted = sum(high - low + 1 for low, high in box._undeleted)
    box._tracker.start(db, box._next_id, state.undelivered if intact else None)
    ledger.state = state
    snapshot_to_ledger(box)
    if status == "ok":
        ledger.open()
        ledger.write(durable=True)  # "not closed" must survive a power cut
    else:
        ledger.create(state)


def snapshot_to_ledger(box: Outbox) -> None:
    """Bring the ledger's copy of the outbox's state up to date (in memory)."""
    state = box._ledger.state
    state.committed = box._last_seq
    state.accepted = box._accepted_total
    state.depth = box.stats.depth - box.stats.undeleted  # undelivered events
    state.counters = box.stats.drops
    state.memory_noted = box._memory_noted
    state.memory_applied = box._memory_applied
    state.undeleted = box._undeleted
    if box._db is not None:
        try:
            state.undelivered = box._tracker.describe(box._db, box._next_id)
        except sqlite3.Error as exc:
            # The previous description stays (a later one takes in these deletes too).
            log.warning("cannot read which outbox rows are undelivered: %s", exc)
