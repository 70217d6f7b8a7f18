"""``tidegate buffer purge``/``replay`` on a stopped gateway's outbox: the ledger follows.

The ledger describes which rows were undelivered (``tidegate.outbox.ledger.undelivered``).
A purge while the gateway is stopped removes rows the ledger still counts; a
replay adds rows it does not know. If the file were then lost before the next
start, the purged events would be counted as lost and the replayed ones would
not. ``note_admin_change`` (public as ``tidegate.outbox.ledger.file.note_admin_change``)
rewrites the ledger's description from the file after such a change.

It never waits and never fails the admin command: a running gateway (it holds
``<outbox>.lock``) notices admin changes itself and rewrites its own ledger; a
missing, unreadable or damaged ledger, a file behind its ledger (a cut log: the
next start must still count that loss) or another outbox are left alone. The
ledger is rewritten in place only (never by creating a file: one made by root
would lock the service's user out of it).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from tidegate.outbox import segment_store
from tidegate.outbox.admin.access import has_segments
from tidegate.outbox.ledger.file import AdminNote, Ledger, ledger_path
from tidegate.outbox.ledger.undelivered import Tracker, count_present
from tidegate.outbox.lock import unless_running
from tidegate.outbox.schema import CLASS_TABLES, INTERNAL_COUNTERS, NEXT_ID, OUTBOX_ID


def note_admin_change(outbox: Path, db: sqlite3.Connection) -> AdminNote:
    outbox = Path(os.path.realpath(outbox))  # as the gateway resolves buffer.path
    try:
        with unless_running(outbox) as free:
            if not free:
                return "gateway running"
            return _update(Ledger(ledger_path(outbox)), db)
    except (OSError, sqlite3.Error):
        return "failed"


def _update(ledger: Ledger, db: sqlite3.Connection) -> AdminNote:
    status = ledger.load()
    if status == "missing":
        return "no ledger"
    if status != "ok":
        return "ledger unreadable"
    if db.in_transaction:
        return "failed"
    state = ledger.state
    counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    if state.outbox_id and counters.get(OUTBOX_ID) != state.outbox_id:
        return "another outbox"
    top = max(
        segment_store.top_id(db) if has_segments(db) else 0,
        *(
            int(db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {t}").fetchone()[0])  # noqa: S608
            for t in CLASS_TABLES
        ),
    )
    next_id = max(top + 1, int(counters.get(NEXT_ID, 1)))
    if state.undelivered is not None and next_id < state.undelivered.next_id:
        return "file behind"
    tracker = Tracker()
    db.execute("BEGIN")  # one snapshot of the file for all the reads below
    try:
        tracker.start(db, next_id, state.undelivered)
        described = tracker.describe(db, next_id)
        depth = count_present(db, described, state.undeleted)
        sources = dict(db.execute("SELECT source, last_seq FROM sources").fetchall())
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
    state.undelivered = described
    state.depth = depth
    for name, value in counters.items():
        if name not in INTERNAL_COUNTERS:
            state.counters[name] = max(state.counters.get(name, 0), int(value))
    for source, seq in sources.items():
        state.committed[source] = max(state.committed.get(source, 0), int(seq))
    ledger.open()
    try:
        if not ledger.fits():
            return "failed"
        ledger.write(durable=True)
    finally:
        ledger.close()
    return "updated"
