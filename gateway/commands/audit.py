"""The command audit: every command and its result, in a table of the outbox file.

A command is written before it acts (``received``) and again with its result, each a
committed transaction, so a repeated id is answered from here after a restart too,
and a command cut short by a crash is known as such (``interrupted``). The table keeps
the newest ``keep`` rows. Its own connection to the outbox file (WAL: the outbox's
commits and these do not wait on each other); calls run in a thread.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tidegate.errors import BufferError_

TABLE = """
CREATE TABLE IF NOT EXISTS command_audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT UNIQUE,     -- the command's id; NULL for one refused unauthenticated
    claimed   TEXT,            -- the id it carried, when not taken as its own
    command   TEXT NOT NULL,
    uplink    TEXT NOT NULL,
    received  REAL NOT NULL,   -- wall clock
    message   TEXT NOT NULL,   -- the command as sent (JSON), without its signature
    status    TEXT NOT NULL,   -- received (until it ends), restarting, done, refused, failed,
                               -- interrupted
    reason    TEXT,
    result    TEXT,            -- the result published (JSON)
    finished  REAL
)
"""

FINAL = ("done", "refused", "failed", "interrupted")
INTERRUPTED = (
    "the gateway stopped before the command finished; it was not run again (the device "
    "may or may not have acted: look before sending a new one)"
)


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    id: str | None
    command: str
    uplink: str
    received: float
    status: str
    reason: str | None
    result: str | None
    finished: float | None
    message: str
    claimed: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id if self.id is not None else self.claimed,
            "command": self.command,
            "uplink": self.uplink,
            "received": self.received,
            "status": self.status,
            "reason": self.reason,
            "result": json.loads(self.result) if self.result else None,
            "finished": self.finished,
            "message": json.loads(self.message),
        }


_SELECT = (
    "SELECT seq, id, command, uplink, received, status, reason, result, finished, message, "
    "claimed FROM command_audit"
)


def _row(values: tuple[Any, ...]) -> AuditRow:
    return AuditRow(*values)


def read_rows(db: sqlite3.Connection, limit: int | None = None) -> list[AuditRow]:
    """The audit, oldest first (the newest ``limit``); none in a file without the table."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'command_audit'"
    ).fetchone()
    if exists is None:
        return []
    rows = db.execute(_SELECT + " ORDER BY seq DESC LIMIT ?", (limit or -1,)).fetchall()
    return [_row(r) for r in reversed(rows)]


class CommandAudit:
    """The audit table of one outbox file."""

    def __init__(self, path: Path, keep: int, protect: float = 3600.0) -> None:
        self._path = path
        self._keep = keep
        self._protect = protect
        """Seconds a row with an id is kept whatever ``keep`` says (the replay window)."""
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> int:
        """Open (creating the table); mark what a crash cut short; how many it marked."""
        try:
            db = sqlite3.connect(self._path, timeout=10.0, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 10000")
            db.execute("PRAGMA journal_mode = WAL")  # the outbox's own; said here too
            with db:
                db.execute(TABLE)
                # Its result too: a repeat of its id is answered "interrupted", not
                # "accepted" (and never run again: the device may have acted).
                cut = db.execute(
                    "UPDATE command_audit SET status = 'interrupted', finished = ?, "
                    "reason = 'interrupted', result = json_object('id', coalesce(id, claimed), "
                    "'command', command, 'status', 'interrupted', 'reason', 'interrupted', "
                    "'message', ?) WHERE status IN ('received', 'accepted')",
                    (time.time(), INTERRUPTED),
                ).rowcount
        except sqlite3.Error as exc:
            raise BufferError_(f"the command audit in {self._path}: {exc}") from None
        self._db = db
        return cut

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _run(
        self, sql: str, args: tuple[Any, ...], *, synced: bool = True
    ) -> list[tuple[Any, ...]]:
        with self._lock:
            db = self._db
            if db is None:
                raise BufferError_("the command audit is not open")
            try:
                # FULL: on the disk before the command acts on it; NORMAL (in WAL): safe
                # from a crash of the process, on the disk with the next FULL commit.
                db.execute(f"PRAGMA synchronous = {'FULL' if synced else 'NORMAL'}")
                with db:
                    return db.execute(sql, args).fetchall()
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:  # a full disk, a file gone: the command says so
                raise BufferError_(f"the command audit: {exc}") from None

    # -- the calls the command service makes (each in a thread) ------------------------

    async def find(self, ident: str) -> AuditRow | None:
        rows = await asyncio.to_thread(self._run, _SELECT + " WHERE id = ?", (ident,))
        return _row(rows[0]) if rows else None

    async def received(
        self, ident: str | None, claimed: str | None, command: str, uplink: str, message: str
    ) -> int:
        """Record a command before it acts; its ``seq``."""

        def insert() -> int:
            rows = self._run(
                "INSERT INTO command_audit (id, claimed, command, uplink, received, message, "
                "status) VALUES (?, ?, ?, ?, ?, ?, 'received') RETURNING seq",
                (ident, claimed, command, uplink, time.time(), message),
            )
            seq = int(rows[0][0])
            # Never a command still running, nor one young enough to be replayed (its id
            # must stay known while its signature's `ts` is accepted): else a flood of
            # refused messages could push it out and let its replay run it again.
            self._run(
                "DELETE FROM command_audit WHERE seq <= ? AND (id IS NULL OR (received < ? "
                "AND status NOT IN ('received', 'restarting')))",
                (seq - self._keep, time.time() - self._protect),
            )
            return seq

        return await asyncio.to_thread(insert)

    async def get(self, seq: int) -> AuditRow | None:
        rows = await asyncio.to_thread(self._run, _SELECT + " WHERE seq = ?", (seq,))
        return _row(rows[0]) if rows else None

    async def update(
        self,
        seq: int,
        status: str,
        reason: str | None,
        result: bytes | None,
        *,
        synced: bool = False,
    ) -> None:
        """Record a command's result. Not synced to the disk at once unless ``synced``
        (the row of ``received`` is): lost to a power cut, the row says ``interrupted``
        after it, and a repeat of the id is still never run again."""
        finished = time.time() if status in FINAL else None
        await asyncio.to_thread(
            partial(self._run, synced=synced),
            "UPDATE command_audit SET status = ?, reason = ?, result = ?, finished = ? "
            "WHERE seq = ?",
            (status, reason, result.decode() if result else None, finished, seq),
        )
