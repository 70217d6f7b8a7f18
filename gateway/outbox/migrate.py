"""Opening the outbox file: its settings, its schema, and upgrades in place.

An upgrade keeps every undelivered event: the schema of an older tidegate is
migrated inside one transaction (a crash halfway leaves the old schema whole,
and the next start tries again). Rows from before checksums have none and are
published as they are. Only a file in a layout no tidegate wrote is unusable
(moved aside by ``tidegate.outbox.recovery``); a file from a newer tidegate is
refused, never moved: its events are fine, this tidegate just cannot read them.

- schema 4: segments (this release);
- schema 3: ``crc`` per stored event — gains the segment tables; its rows stay rows;
- schema 2: one table per priority class — gains the ``crc`` column;
- schema 1 (``user_version`` 0): one ``outbox`` table — its rows move to the
  normal class, marked as accepted in an earlier boot.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tidegate.clock import RELEASE_EPOCH
from tidegate.errors import BufferError_
from tidegate.outbox.disk import ensure_room_to_copy
from tidegate.outbox.recovery import Unusable
from tidegate.outbox.schema import (
    CLASS_TABLES,
    CRC_FROM_ID,
    NEXT_ID,
    POSITIONS,
    SCHEMA_VERSION,
    SEGMENT_TABLES,
    STATEMENTS,
    VIEW,
)

log = logging.getLogger(__name__)

V1_COLUMNS = ("id", "source_id", "route_id", "accepted", "payload")
V2_COLUMNS = ("id", "source_id", "route_id", "accepted", "synced", "boot_id", "payload")


def configure(
    db: sqlite3.Connection,
    path: Path,
    *,
    durability: str,
    wal_pages: int = 1000,
    wal_limit: int = 8 * 1024 * 1024,
) -> None:
    """Settings of the connection, then the schema (created, or migrated in place)."""
    # Small pages: a commit rewrites every page it touches (the sources row, the
    # counters, b-tree interiors), so on an SD card 1 KiB pages write about half
    # the bytes of 4 KiB ones per small commit (bench/outbox_durability.py).
    # It only takes effect on a new file (before WAL mode is set).
    db.execute("PRAGMA page_size=1024")
    db.execute("PRAGMA journal_mode=WAL")
    # Debian builds SQLite with SECURE_DELETE on: every page a delete frees would be
    # zeroed and written again, twice what deleting delivered events costs with FAST
    # (content on pages written anyway is still zeroed). Measured with 50-event
    # commits: 15 -> 8 WAL pages per delete, 670 -> 530 WAL bytes per event.
    db.execute("PRAGMA secure_delete=FAST")
    db.execute("PRAGMA synchronous=" + ("FULL" if durability == "fsync" else "NORMAL"))
    db.execute("PRAGMA busy_timeout=5000")
    # The WAL's size on disk: checkpoints every wal_pages pages, and after a burst it
    # is cut back to wal_limit (lower on a small disk: tidegate.outbox.disk).
    db.execute(f"PRAGMA wal_autocheckpoint={int(wal_pages)}")
    db.execute(f"PRAGMA journal_size_limit={int(wal_limit)}")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        # A newer tidegate wrote it: refuse rather than misread or move its events.
        raise BufferError_(
            f"the outbox {path} has schema {version}, newer than this tidegate "
            f"({SCHEMA_VERSION}); upgrade tidegate or point buffer.path elsewhere"
        )
    tables = {
        name: kind for name, kind in db.execute("SELECT name, type FROM sqlite_master")
    }
    if version == SCHEMA_VERSION:
        if not all(t in tables for t in (*CLASS_TABLES, *SEGMENT_TABLES, POSITIONS)):
            raise Unusable(f"schema {version} without its tables")
        # Only files of a pre-release schema 3 lack it (a read; written just then).
        _dead_letters_crc(db)
        return  # nothing to write: an open on a full disk must not need to
    if version == 3:
        _migrate(db, path, version, _from_v3)
    elif version == 2:
        _migrate(db, path, version, _from_v2)
    elif version == 0 and tables.get("outbox") == "table":
        # It copies every row (in one transaction): only if the disk can hold that.
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        ensure_room_to_copy(path, pages * page_size)
        _migrate(db, path, 1, _from_v1)
    elif version == 0 and not tables:
        _migrate(db, path, 0, _create)
    else:
        raise Unusable(f"an outbox in a layout no tidegate wrote (schema {version or 1})")


def _columns(db: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})"))


def _dead_letters_crc(db: sqlite3.Connection) -> None:
    """Dead letters keep the CRC their event was stored with (a replay puts it back)."""
    if "crc" not in _columns(db, "dead_letters"):
        db.execute("ALTER TABLE dead_letters ADD COLUMN crc INTEGER")


def _migrate(
    db: sqlite3.Connection, path: Path, version: int, step: Callable[[sqlite3.Connection], int]
) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        count = step(db)
        _mark_crc_from(db)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        # A full disk makes SQLite roll back by itself: a ROLLBACK then would fail and
        # hide why (the caller must see "database or disk is full" to wait for room).
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    if version:
        log.warning(
            "outbox %s: upgraded from schema %d to %d in place, keeping its %d "
            "undelivered events%s",
            path,
            version,
            SCHEMA_VERSION,
            count,
            "" if version >= 3 else " (they have no checksum: published as they are)",
        )


def _mark_crc_from(db: sqlite3.Connection) -> None:
    """Every row from now on is stored with a checksum: note the first id that will be
    (above every id used so far), so ``take`` can tell an old row's NULL ``crc`` from
    one a damaged header byte made NULL. Written in the migration's own transaction."""
    top = max(
        int(db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0])  # noqa: S608
        for table in CLASS_TABLES
    )
    row = db.execute("SELECT value FROM counters WHERE name = ?", (NEXT_ID,)).fetchone()
    first = max(top + 1, int(row[0]) if row else 0)
    # OR IGNORE: the value is fixed once written (a later upgrade never moves it).
    db.execute("INSERT OR IGNORE INTO counters (name, value) VALUES (?, ?)", (CRC_FROM_ID, first))


def _create(db: sqlite3.Connection) -> int:
    for statement in STATEMENTS:
        db.execute(statement)
    return 0


def _from_v3(db: sqlite3.Connection) -> int:
    for statement in STATEMENTS:  # the segment tables (everything else exists already)
        db.execute(statement)
    _dead_letters_crc(db)
    return sum(
        int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
        for table in CLASS_TABLES
    )


def _from_v2(db: sqlite3.Connection) -> int:
    count = 0
    for table in CLASS_TABLES:
        if _columns(db, table) != V2_COLUMNS:
            raise Unusable(f"schema 2 with unexpected columns in {table}")
        db.execute(f"ALTER TABLE {table} ADD COLUMN crc INTEGER")
        count += db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
    # The view lists the tables' columns as they were when it was made: make it again.
    db.execute("DROP VIEW IF EXISTS outbox")
    db.execute(VIEW.strip().rstrip(";"))
    for statement in STATEMENTS:  # anything else schema 3 has (all IF NOT EXISTS)
        db.execute(statement)
    _dead_letters_crc(db)
    return int(count)


def _from_v1(db: sqlite3.Connection) -> int:
    if _columns(db, "outbox") != V1_COLUMNS:
        raise Unusable("an outbox table in a layout no tidegate wrote")
    db.execute("ALTER TABLE outbox RENAME TO outbox_v1")
    for statement in STATEMENTS:
        db.execute(statement)
    # Schema 1 kept no boots: its rows belong to an earlier boot, so a clock step now
    # never shifts them, and one accepted on an untrusted clock never ages out.
    db.execute("INSERT OR IGNORE INTO boots (boot) VALUES ('schema-1')")
    (boot,) = db.execute("SELECT id FROM boots WHERE boot = 'schema-1'").fetchone()
    count = db.execute(
        "INSERT INTO outbox_normal (id, source_id, route_id, accepted, synced, boot_id, payload) "
        "SELECT id, source_id, route_id, accepted, accepted >= ?, ?, payload FROM outbox_v1",
        (RELEASE_EPOCH, boot),
    ).rowcount
    db.execute(
        "INSERT INTO counters (name, value) SELECT ?, COALESCE(MAX(id), 0) + 1 FROM outbox_v1 "
        "WHERE true ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)",
        (NEXT_ID,),
    )
    db.execute("DROP TABLE outbox_v1")
    _dead_letters_crc(db)
    return int(count)
