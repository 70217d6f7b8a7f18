"""Administrative access to an outbox file: what ``tidegate buffer`` does.

Works on a stopped gateway's file and on the file of a running gateway, through
SQLite's own concurrency (the outbox is in WAL mode):

- readers (stats, peek, export) open the file read-only (``mode=ro``) and read
  one consistent snapshot inside a deferred transaction; in WAL mode a reader
  never blocks the gateway's commits;
- writers (replay: ``tidegate.outbox.admin.replay``, purge: ``tidegate.outbox.admin.purge``)
  work in short ``BEGIN IMMEDIATE`` transactions (``write_transaction``) of a
  few hundred rows, so the gateway waits a few milliseconds at most for its
  next commit (it has a ``busy_timeout``), and bump the ``admin_generation``
  counter in the same transaction, which tells the gateway to recount its
  depth and bytes.

Nothing here changes ``journal_mode`` or any other setting of the file.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from tidegate.errors import BufferError_
from tidegate.outbox.ledger.file import ledger_path, read_ledger
from tidegate.outbox.schema import (
    ADMIN_GENERATION,
    CLASS_TABLES,
    INTERNAL_COUNTERS,
    MEMORY_APPLIED,
    SCHEMA_VERSION,
)
from tidegate.priority import PRIORITIES

BUSY_TIMEOUT_MS = 5000

COUNTER_SQL = "SELECT value FROM counters WHERE name = ?"

# -- opening -------------------------------------------------------------------------


def _uri(path: Path, mode: str) -> str:
    return f"{path.absolute().as_uri()}?mode={mode}"


READABLE_VERSIONS = (2, SCHEMA_VERSION)
"""Schema 2 (before checksums) reads the same; the gateway upgrades it at its next start."""


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
            f"{'reads' if mode == 'ro' else 'writes'} version {SCHEMA_VERSION} ({hint})"
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


# -- stats ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassStats:
    depth: int
    payload_bytes: int


@dataclass(frozen=True, slots=True)
class SourceStats:
    source: str
    depth: int
    payload_bytes: int
    oldest: float | None
    """Acceptance time of its oldest undelivered event."""
    last_seq: int
    """The last seq committed for it (committed events are numbered 1..last_seq)."""


@dataclass(frozen=True, slots=True)
class ReasonCount:
    stage: str
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class BufferStats:
    path: Path
    taken_at: float
    db_bytes: int
    wal_bytes: int
    by_priority: dict[str, ClassStats]
    by_source: list[SourceStats]
    oldest: float | None
    unsynced: int
    """Undelivered events accepted while the wall clock was not trusted."""
    counters: dict[str, int]
    """Persistent counters: drops by reason, purges, corruption recoveries, ..."""
    dead_letters: int
    dead_letter_bytes: int
    dead_by_reason: list[ReasonCount]
    """The most frequent (stage, reason) pairs, most frequent first."""
    dead_other: int = 0
    """Dead letters whose (stage, reason) is not among ``dead_by_reason``."""
    pending: dict[str, int] = dataclass_field(default_factory=dict)
    """Drops the gateway counted but could not commit yet (a full disk): its ledger has them."""
    ledger: str = "missing"
    """The ledger beside the file: ok, missing (before the first start), damaged."""
    reserved: dict[str, int] = dataclass_field(default_factory=dict)
    """Per source, the seq mark no seq ever went above (from the ledger)."""

    @property
    def depth(self) -> int:
        return sum(c.depth for c in self.by_priority.values())

    @property
    def payload_bytes(self) -> int:
        return sum(c.payload_bytes for c in self.by_priority.values())

    @property
    def oldest_age(self) -> float | None:
        return None if self.oldest is None else max(0.0, self.taken_at - self.oldest)

    def as_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "file_bytes": {"db": self.db_bytes, "wal": self.wal_bytes},
            "depth": self.depth,
            "payload_bytes": self.payload_bytes,
            "oldest_age_s": self.oldest_age,
            "unsynced": self.unsynced,
            "by_priority": {
                name: {"depth": c.depth, "payload_bytes": c.payload_bytes}
                for name, c in self.by_priority.items()
            },
            "by_source": {
                s.source: {
                    "depth": s.depth,
                    "payload_bytes": s.payload_bytes,
                    "oldest_age_s": None if s.oldest is None else self.taken_at - s.oldest,
                    "last_seq": s.last_seq,
                }
                for s in self.by_source
            },
            "counters": self.counters,
            "pending_drops": self.pending,
            "ledger": {"state": self.ledger, "reserved": self.reserved},
            "dead_letters": {
                "count": self.dead_letters,
                "payload_bytes": self.dead_letter_bytes,
                "by_reason": [
                    {"stage": r.stage, "reason": r.reason, "count": r.count}
                    for r in self.dead_by_reason
                ],
                "other": self.dead_other,
            },
        }


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_stats(db: Database, path: Path, top: int = 10) -> BufferStats:
    """Everything ``buffer stats`` shows, from one snapshot of the file."""
    with snapshot(db):
        by_priority: dict[str, ClassStats] = {}
        per_source: dict[int, list[Any]] = {}
        oldest: float | None = None
        unsynced = 0
        for name, table in zip(PRIORITIES, CLASS_TABLES, strict=True):
            depth = payload = 0
            for row in db.query(
                "SELECT source_id, COUNT(*) AS n, COALESCE(SUM(LENGTH(payload)), 0) AS size, "  # noqa: S608 - constant names
                f"MIN(accepted) AS oldest, SUM(synced = 0) AS unsynced FROM {table} "
                "GROUP BY source_id"
            ):
                depth += row["n"]
                payload += row["size"]
                unsynced += row["unsynced"]
                oldest = row["oldest"] if oldest is None else min(oldest, row["oldest"])
                entry = per_source.setdefault(row["source_id"], [0, 0, row["oldest"]])
                entry[0] += row["n"]
                entry[1] += row["size"]
                entry[2] = min(entry[2], row["oldest"])
            by_priority[name] = ClassStats(depth, payload)
        by_source = []
        known: set[int] = set()
        for row in db.query("SELECT id, source, last_seq FROM sources ORDER BY source"):
            known.add(row["id"])
            n, size, first = per_source.get(row["id"], (0, 0, None))
            by_source.append(SourceStats(row["source"], n, size, first, row["last_seq"]))
        for source_id in sorted(per_source.keys() - known):  # rows whose source row is gone
            n, size, first = per_source[source_id]
            by_source.append(SourceStats(f"#{source_id}", n, size, first, 0))
        counters = {
            row["name"]: row["value"]
            for row in db.query("SELECT name, value FROM counters ORDER BY name")
            if row["name"] not in INTERNAL_COUNTERS
        }
        applied = int(scalar(db, COUNTER_SQL, (MEMORY_APPLIED,)) or 0)
        dead, dead_bytes = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM dead_letters"
        ).fetchone()
        reasons = [
            ReasonCount(row["stage"], row["reason"], row["n"])
            for row in db.query(
                "SELECT stage, reason, COUNT(*) AS n FROM dead_letters GROUP BY stage, reason "
                "ORDER BY n DESC, stage, reason LIMIT ?",
                (top,),
            )
        ]
    # A symlinked --db: the ledger and WAL are beside the file itself, as the gateway
    # (and SQLite) resolve it, never beside the link.
    real = Path(os.path.realpath(path))
    ledger, state = read_ledger(ledger_path(real))
    pending = 0 if state is None else max(0, state.memory_noted - applied)
    return BufferStats(
        pending={"dropped_memory": pending} if pending else {},
        ledger=ledger,
        reserved={} if state is None else dict(state.reserved),
        path=path,
        taken_at=time.time(),
        db_bytes=_file_size(real),
        wal_bytes=_file_size(Path(f"{real}-wal")),
        by_priority=by_priority,
        by_source=by_source,
        oldest=oldest,
        unsynced=unsynced,
        counters=counters,
        dead_letters=dead,
        dead_letter_bytes=dead_bytes,
        dead_by_reason=reasons,
        dead_other=dead - sum(r.count for r in reasons),
    )


# -- listing (peek, export) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """An undelivered event in the outbox."""

    id: int
    priority: str
    source: str | None
    topic: str | None
    qos: int | None
    retain: bool | None
    accepted: float | None
    """None if the stored time is not a number (a damaged row)."""
    synced: bool
    payload: bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    at: float
    stage: str
    reason: str
    source: str | None
    topic: str | None
    payload: bytes | None
    crc: object = None
    """The CRC the event was stored with (an int; None for raw input; bytes or a float
    if the stored row was damaged): what a replay puts back."""


def _source_filter(source_glob: str | None) -> tuple[str, list[object]]:
    if source_glob is None:
        return "", []
    return "WHERE o.source_id IN (SELECT id FROM sources WHERE source GLOB ?) ", [source_glob]


def _class_entries(
    db: Database, priority: int, source_glob: str | None, limit: int | None
) -> Iterator[Entry]:
    where, params = _source_filter(source_glob)
    name = PRIORITIES[priority]
    rows = db.execute(
        # Whatever a damaged record's header says a value is, it is read as what it should
        # be: the payload as bytes (a TEXT one may not even be UTF-8), times as numbers.
        "SELECT o.id, s.source, r.topic, r.qos, r.retain, "  # noqa: S608 - constant names
        "IIF(typeof(o.accepted) IN ('real', 'integer'), o.accepted, NULL), "
        "o.synced IS 1, CAST(o.payload AS BLOB) "
        f"FROM {CLASS_TABLES[priority]} o "
        "LEFT JOIN sources s ON s.id = o.source_id LEFT JOIN routes r ON r.id = o.route_id "
        f"{where}ORDER BY o.id LIMIT ?",
        [*params, -1 if limit is None else limit],
    )
    for row_id, source, topic, qos, retain, accepted, synced, payload in rows:
        yield Entry(
            row_id,
            name,
            source,
            topic,
            qos,
            None if retain is None else bool(retain),
            accepted,
            bool(synced),
            b"" if payload is None else bytes(payload),
        )


def entries(
    db: Database, *, source_glob: str | None = None, limit: int | None = None
) -> Iterator[Entry]:
    """Undelivered events in acceptance order (all classes merged), streamed."""
    streams = [_class_entries(db, p, source_glob, limit) for p in range(len(CLASS_TABLES))]
    merged = heapq.merge(*streams, key=lambda e: e.id)
    return merged if limit is None else itertools.islice(merged, limit)


def dead_letters(
    db: Database,
    *,
    source_glob: str | None = None,
    reason_glob: str | None = None,
    limit: int | None = None,
) -> Iterator[DeadLetter]:
    """Dead letters, oldest first, streamed."""
    conditions = []
    params: list[object] = []
    for column, glob in (("source", source_glob), ("reason", reason_glob)):
        if glob is not None:
            conditions.append(f"{column} GLOB ?")
            params.append(glob)
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    rows = db.execute(
        "SELECT id, at, stage, reason, source, topic, CAST(payload AS BLOB), "  # noqa: S608 - no user text
        "IIF(typeof(crc) = 'text', CAST(crc AS BLOB), crc) FROM dead_letters "
        f"{where}ORDER BY id LIMIT ?",
        [*params, -1 if limit is None else limit],
    )
    for row_id, at, stage, reason, source, topic, payload, crc in rows:
        yield DeadLetter(
            row_id,
            at,
            stage,
            reason,
            source,
            topic,
            None if payload is None else bytes(payload),
            crc,
        )
