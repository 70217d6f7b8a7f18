"""Opening an outbox file for ``tidegate buffer``, and its transactions.

Works on a stopped gateway's file and on the file of a running gateway, through
SQLite's own concurrency (the outbox is in WAL mode):

- readers open the file read-only (``mode=ro``) and read one consistent
  snapshot inside a deferred transaction (``snapshot``); in WAL mode a reader
  never blocks the gateway's commits;
- writers work in short ``BEGIN IMMEDIATE`` transactions (``write_transaction``)
  of a few hundred rows, so the gateway waits a few milliseconds at most for its
  next commit (it has a ``busy_timeout``), and bump the ``admin_generation``
  counter in the same transaction, which tells the gateway to recount its
  depth and bytes.

Nothing here changes ``journal_mode`` or any other setting of the file.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from tidegate.errors import BufferError_
from tidegate.outbox.schema import ADMIN_GENERATION, SCHEMA_VERSION, SEGMENT_TABLES

BUSY_TIMEOUT_MS = 5000

COUNTER_SQL = "SELECT value FROM counters WHERE name = ?"


def _uri(path: Path, mode: str) -> str:
    return f"{path.absolute().as_uri()}?mode={mode}"


READABLE_VERSIONS = (2, 3, SCHEMA_VERSION)
"""Schema 2 (before checksums) and 3 (before segments) read the same, without segment
tables (``has_segments``); the gateway upgrades them at its next start."""


def has_segments(db: Database | sqlite3.Connection) -> bool:
    """Whether the file has segment tables (schema 4 on; not a schema 2 or 3 file)."""
    row = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SEGMENT_TABLES[0],)
    ).fetchone()
    return row is not None


def _connect(path: Path, mode: str) -> Database:
    if not path.is_file():
        raise BufferError_(f"no outbox at {path} (has the gateway run with this configuration?)")
    try:
        conn = sqlite3.connect(_uri(path, mode), uri=True)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error as exc:
        raise BufferError_(f"cannot open the outbox {path}: {exc}") from None
    readable = READABLE_VERSIONS if mode == "ro" else (SCHEMA_VERSION,)
    if version not in readable:
        conn.close()
        hint = (
            "start the gateway once: it upgrades the file in place"
            if version < SCHEMA_VERSION
            else "the file was written by a newer tidegate release"
        )
        raise BufferError_(
            f"{path} has outbox schema version {version}; this tidegate "
            f"{'reads' if mode == 'ro' else 'writes'} version "
            f"{'/'.join(map(str, readable))} ({hint})"
        )
    return Database(conn, recursive_triggers=False, execute_plugins=False)


def open_for_reading(path: Path) -> Database:
    """Read-only: the file is never written, whoever else has it open."""
    return _connect(path, "ro")


def open_for_writing(path: Path) -> Database:
    """Read-write, without creating the file or changing its settings."""
    return _connect(path, "rw")


@contextlib.contextmanager
def snapshot(db: Database) -> Iterator[Database]:
    """One consistent view of the file for several queries (a read transaction)."""
    try:
        db.execute("BEGIN")
        yield db
    except sqlite3.Error as exc:
        raise BufferError_(f"cannot read the outbox: {exc}") from None
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.rollback()


@contextlib.contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """A short write transaction that tells the gateway its counts changed."""
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
        bump(db, ADMIN_GENERATION, 1)
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            db.rollback()
        raise BufferError_(f"cannot write the outbox: {exc}") from None
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.rollback()
        raise


def bump(db: Database, name: str, n: int) -> None:
    if n:
        db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )


def scalar(db: Database, sql: str, params: Sequence[object] = ()) -> Any:
    row = db.execute(sql, params).fetchone()
    return None if row is None else row[0]
