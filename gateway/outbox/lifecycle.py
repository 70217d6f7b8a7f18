"""Opening and closing an outbox: what ``Outbox.open`` and ``Outbox.close`` do.

``open`` resolves a symlinked path to the file itself, takes the lock (one
gateway per outbox: ``tidegate.outbox.lock``), opens the file or moves a
damaged one aside (``tidegate.outbox.recovery``), and compares it with its
ledger (``tidegate.outbox.ledger.sync``): a damaged, emptied or cut file is
counted as a loss and no source's ``seq`` is ever used twice. An open that
fails lets go of all it took; on a disk too full to open on it keeps the lock,
so the gateway can wait for room with the outbox still its own.

``close`` leaves the ledger describing the file as it is, marked clean.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from tidegate.errors import BufferError_
from tidegate.outbox.bound import refresh_bound
from tidegate.outbox.disk import Disk, OutboxNoSpace, raise_if_no_space
from tidegate.outbox.files import make_private, make_private_dirs
from tidegate.outbox.ledger.file import Ledger, ledger_path
from tidegate.outbox.ledger.sync import load_usable, reconcile_at_open
from tidegate.outbox.lock import OutboxLock
from tidegate.outbox.migrate import configure
from tidegate.outbox.recovery import check_empty, open_or_recover
from tidegate.outbox.schema import ADMIN_GENERATION, MEMORY_APPLIED
from tidegate.wording import count

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox

# Logged as the store, wherever its code lives: what users see stays the same.
log = logging.getLogger("tidegate.outbox.store")


def open_outbox(box: Outbox) -> None:
    _resolve_and_lock(box)
    try:
        _open(box)
    except BaseException as exc:
        # A disk too full to open on: the gateway waits for room (AsyncOutbox),
        # keeping the outbox its own meanwhile.
        _abandon(box, keep_lock=isinstance(exc, OutboxNoSpace))
        raise


def close_outbox(box: Outbox) -> None:
    if box._db is not None:
        # The ledger at a stop describes the file as it is now: an admin change
        # (a purge) since the last commit is in it, so it is never taken for a loss.
        with contextlib.suppress(sqlite3.Error, BufferError_):
            box._sync_with_admin_changes()
        box._snapshot_to_ledger()
        box._db.close()
        box._db = None
        box._ledger.state.clean = True
        with contextlib.suppress(OSError):
            box._ledger.write(durable=True)
    box._ledger.close()
    box._lock.release()


def _configure(box: Outbox, db: sqlite3.Connection) -> None:
    # Connecting created the file (empty) if it was missing: owner-only before a byte
    # is written, and before SQLite makes its -wal and -shm files with its mode.
    make_private(box.path)
    plan = box._disk.plan if box._disk is not None else None
    configure(
        db,
        box.path,
        durability=box.durability,
        **({} if plan is None else {"wal_pages": plan.wal_pages, "wal_limit": plan.wal_limit}),
    )


def _resolve_and_lock(box: Outbox) -> None:
    """The real file (a symlinked ``buffer.path``: moving aside, the disk's room and the
    ledger act on the file itself), then one gateway per outbox (``outbox_lock``)."""
    real = Path(os.path.realpath(box.path))
    try:
        make_private_dirs(real.parent)
    except OSError as exc:
        raise_if_no_space(real, exc, "create the directory of")
        raise BufferError_(f"cannot create {real.parent}: {exc.strerror}") from None
    if real != box.path:
        box.path = real
        box._ledger = Ledger(ledger_path(real))
        box._lock = OutboxLock(real)
    if not box._lock.held:  # held still if the last try found the disk full
        box._lock.acquire()


def _abandon(box: Outbox, keep_lock: bool = False) -> None:
    """An open that failed: let go of what it took, writing nothing."""
    if box._db is not None:
        with contextlib.suppress(sqlite3.Error):
            box._db.close()
        box._db = None
    box._ledger.close()
    if not keep_lock:
        box._lock.release()


def _open(box: Outbox) -> None:
    try:
        make_private_dirs(box.path.parent)
    except OSError as exc:
        raise BufferError_(f"cannot create {box.path.parent}: {exc.strerror}") from None
    box._disk = Disk(box.path)
    # A start on a full disk must not fail for want of the few pages an open writes.
    box._disk.release_for_start()
    ledger = box._ledger
    status = load_usable(ledger)
    try:
        # A 0-byte or missing file where the ledger says events were is damage too.
        recreated = check_empty(box.path) if status == "ok" and ledger.state.has_history else None
    except OSError as exc:
        raise BufferError_(f"cannot move the empty outbox {box.path} aside: {exc}") from None
    db, moved = open_or_recover(box.path, functools.partial(_configure, box))
    box._db = db
    if moved is not None:
        recreated = moved
    if recreated is not None and recreated.where is not None:
        box.stats.moved_aside = recreated.where
    try:
        _load_state(box, db)
        reconcile_at_open(box, status, recreated)
    except sqlite3.Error as exc:
        raise_if_no_space(box.path, exc)
        raise BufferError_(f"cannot read the outbox {box.path}: {exc}") from None
    except OSError as exc:
        raise_if_no_space(box.path, exc)
        raise BufferError_(f"cannot write the outbox ledger {ledger.path}: {exc}") from None
    try:
        refresh_bound(box, 0)
    except sqlite3.Error as exc:
        raise BufferError_(f"cannot read the outbox {box.path}: {exc}") from None
    if box.stats.depth:
        log.info("outbox %s holds %s", box.path, count(box.stats.depth, "undelivered event"))


def _load_state(box: Outbox, db: sqlite3.Connection) -> None:
    db.execute("INSERT OR IGNORE INTO boots (boot) VALUES (?)", (box.clock.boot_id,))
    (box._boot_row,) = db.execute(
        "SELECT id FROM boots WHERE boot = ?", (box.clock.boot_id,)
    ).fetchone()
    box._read_drops(db)
    box._admin_generation = box._read_counter(db, ADMIN_GENERATION)
    box._memory_applied = box._read_counter(db, MEMORY_APPLIED)
    box._load_ids(db)
    box.recount()
    box._rows_changed()  # whatever the file holds is read from it
