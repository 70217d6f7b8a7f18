"""The outbox: a SQLite file that holds every accepted event until the broker
acknowledged it (store-and-forward).

- ``put`` commits a batch and only then counts it as accepted; it assigns each
  event its per-source ``seq`` in the same transaction, so ``seq`` survives
  restarts and has no gaps among accepted events.
- ``take`` returns the oldest rows after a cursor (rows already handed to the
  publisher are not handed out twice in one connection; after a reconnect the
  publisher starts again from the oldest).
- ``ack`` deletes rows the broker acknowledged; nothing is deleted before.
- ``reject`` moves rows to the ``dead_letters`` table with a reason.

All methods are synchronous and must be called from one thread; the pipeline
runs them on the outbox's own worker thread (``AsyncOutbox``) so commits never
block the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, ParamSpec, TypeVar

from tidegate.errors import BufferError_
from tidegate.outgoing import Outgoing
from tidegate.payload import encode_event

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,          -- acceptance order (ids only grow while the process runs)
    source_id INTEGER NOT NULL,      -- sources.id
    route_id INTEGER NOT NULL,       -- routes.id
    accepted REAL NOT NULL,          -- wall clock at acceptance
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS routes (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    UNIQUE (topic, qos, retain)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT,
    topic TEXT,
    payload BLOB
);
"""


class Row(NamedTuple):
    id: int
    topic: str
    qos: int
    retain: bool
    payload: bytes


class DeadInput(NamedTuple):
    at: float
    stage: str
    reason: str
    source: str | None
    raw: bytes


@dataclass(slots=True)
class OutboxStats:
    depth: int = 0
    bytes: int = 0
    accepted: int = 0
    acked: int = 0
    dead_letters: int = 0
    commits: int = 0


Route = tuple[str, int, bool]


class Outbox:
    def __init__(
        self, path: Path, gateway: str, durability: Literal["batch", "fsync"] = "batch"
    ) -> None:
        self.path = path
        self.gateway = gateway
        self.durability = durability
        self.stats = OutboxStats()
        self._db: sqlite3.Connection | None = None
        self._last_seq: dict[str, int] = {}
        self._source_ids: dict[str, int] = {}
        self._route_ids: dict[Route, int] = {}
        self._routes: dict[int, Route] = {}
        self._next_id = 1

    # -- lifecycle ----------------------------------------------------------------

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=" + ("FULL" if self.durability == "fsync" else "NORMAL"))
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(SCHEMA)
            for source_id, source, last_seq in db.execute(
                "SELECT id, source, last_seq FROM sources"
            ):
                self._source_ids[source] = source_id
                self._last_seq[source] = last_seq
            for route_id, topic, qos, retain in db.execute(
                "SELECT id, topic, qos, retain FROM routes"
            ):
                route = (topic, qos, bool(retain))
                self._route_ids[route] = route_id
                self._routes[route_id] = route
            depth, size, top = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), COALESCE(MAX(id), 0) "
                "FROM outbox"
            ).fetchone()
            (dead,) = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
        except sqlite3.Error as exc:
            raise BufferError_(f"cannot open the outbox {self.path}: {exc}") from None
        except OSError as exc:
            raise BufferError_(f"cannot create the outbox {self.path}: {exc.strerror}") from None
        self.stats.depth, self.stats.bytes, self.stats.dead_letters = depth, size, dead
        self._next_id = top + 1
        self._db = db
        if depth:
            log.info("outbox %s holds %d undelivered events from before", self.path, depth)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise BufferError_("the outbox is not open")
        return self._db

    def _source_id(self, source: str) -> int:
        """Id of a source, inserting it (inside the caller's transaction) if new."""
        source_id = self._source_ids.get(source)
        if source_id is None:
            cursor = self.db.execute(
                "INSERT INTO sources (source, last_seq) VALUES (?, 0)", (source,)
            )
            source_id = cursor.lastrowid
            assert source_id is not None
            self._source_ids[source] = source_id
        return source_id

    def _route_id(self, route: Route) -> int:
        route_id = self._route_ids.get(route)
        if route_id is None:
            cursor = self.db.execute(
                "INSERT INTO routes (topic, qos, retain) VALUES (?, ?, ?)",
                (route[0], route[1], int(route[2])),
            )
            route_id = cursor.lastrowid
            assert route_id is not None
            self._route_ids[route] = route_id
            self._routes[route_id] = route
        return route_id

    # -- the contract --------------------------------------------------------------

    def put(self, items: Sequence[Outgoing]) -> int:
        """Commit ``items``; when this returns they are accepted. Returns how many."""
        if not items:
            return 0
        now = time.time()
        seqs = dict(self._last_seq)  # kept only if the transaction commits
        gateway = self.gateway
        db = self.db
        added_sources = {s for s in (o.event.source for o in items) if s not in self._source_ids}
        added_routes = {(o.topic, o.qos, o.retain) for o in items} - self._route_ids.keys()
        try:
            db.execute("BEGIN IMMEDIATE")
            source_ids = self._source_ids
            route_ids = self._route_ids
            for source in added_sources:
                self._source_id(source)
            for route in added_routes:
                self._route_id(route)
            rows = []
            size = 0
            row_id = self._next_id
            for event, topic, qos, retain in items:
                source = event.source
                seq = seqs.get(source, 0) + 1
                seqs[source] = seq
                payload = encode_event(event, seq, gateway)
                size += len(payload)
                rows.append(
                    (row_id, source_ids[source], route_ids[(topic, qos, retain)], now, payload)
                )
                row_id += 1
            db.executemany(
                "INSERT INTO outbox (id, source_id, route_id, accepted, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "UPDATE sources SET last_seq = ? WHERE id = ?",
                [(n, source_ids[src]) for src, n in seqs.items() if self._last_seq.get(src) != n],
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            for source in added_sources:
                self._source_ids.pop(source, None)
            for route in added_routes:
                self._routes.pop(self._route_ids.pop(route, -1), None)
            raise BufferError_(f"cannot commit {len(items)} events to the outbox: {exc}") from None
        self._next_id = row_id
        self._last_seq = seqs
        self.stats.depth += len(rows)
        self.stats.bytes += size
        self.stats.accepted += len(rows)
        self.stats.commits += 1
        return len(rows)

    def take(self, limit: int, after_id: int = 0) -> list[Row]:
        """The oldest undelivered rows with ``id > after_id``, in acceptance order."""
        routes = self._routes
        rows = self.db.execute(
            "SELECT id, route_id, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [Row(row_id, *routes[route_id], payload) for row_id, route_id, payload in rows]

    def ack(self, ids: Iterable[int], payload_bytes: int | None = None) -> int:
        """Delete delivered rows; returns how many were deleted.

        ``payload_bytes`` (their total payload size) saves a read when the caller
        knows it, as the publisher does.
        """
        ranges = _ranges(sorted(ids))
        if not ranges:
            return 0
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            deleted = 0
            size = 0
            for low, high in ranges:
                if payload_bytes is None:
                    (chunk,) = db.execute(
                        "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox "
                        "WHERE id BETWEEN ? AND ?",
                        (low, high),
                    ).fetchone()
                    size += chunk
                deleted += db.execute(
                    "DELETE FROM outbox WHERE id BETWEEN ? AND ?", (low, high)
                ).rowcount
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise BufferError_(f"cannot delete delivered events from the outbox: {exc}") from None
        self.stats.depth -= deleted
        self.stats.bytes -= size if payload_bytes is None else payload_bytes
        self.stats.acked += deleted
        return deleted

    def reject(self, ids: Sequence[int], reason: str, stage: str = "publish") -> int:
        """Move rows to the dead-letter table with ``reason``."""
        if not ids:
            return 0
        db = self.db
        now = time.time()
        try:
            db.execute("BEGIN IMMEDIATE")
            moved = 0
            size = 0
            for row_id in ids:
                row = db.execute(
                    "SELECT s.source, r.topic, o.payload FROM outbox o "
                    "JOIN sources s ON s.id = o.source_id JOIN routes r ON r.id = o.route_id "
                    "WHERE o.id = ?",
                    (row_id,),
                ).fetchone()
                if row is None:
                    continue
                db.execute(
                    "INSERT INTO dead_letters (at, stage, reason, source, topic, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (now, stage, reason, *row),
                )
                db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
                moved += 1
                size += len(row[2])
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise BufferError_(f"cannot move events to the dead-letter table: {exc}") from None
        self.stats.depth -= moved
        self.stats.bytes -= size
        self.stats.dead_letters += moved
        return moved

    def dead_letter_input(self, letters: Sequence[DeadInput]) -> None:
        """Keep input that never became an event (a garbage frame, a failed parse)."""
        if not letters:
            return
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO dead_letters (at, stage, reason, source, topic, payload) "
                "VALUES (?, ?, ?, ?, NULL, ?)",
                letters,
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise BufferError_(f"cannot write dead letters: {exc}") from None
        self.stats.dead_letters += len(letters)

    def last_seq(self, source: str) -> int:
        return self._last_seq.get(source, 0)

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # no transaction may be open
            self.db.execute("ROLLBACK")


def _ranges(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Collapse sorted ids into inclusive (low, high) runs."""
    out: list[tuple[int, int]] = []
    for i in ids:
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        elif not out or i > out[-1][1]:
            out.append((i, i))
    return out


P = ParamSpec("P")
T = TypeVar("T")


class AsyncOutbox:
    """Runs an Outbox on a dedicated thread so SQLite never blocks the event loop."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")

    @property
    def stats(self) -> OutboxStats:
        return self.outbox.stats

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def open(self) -> None:
        await self._call(self.outbox.open)

    async def put(self, items: Sequence[Outgoing]) -> int:
        return await self._call(self.outbox.put, items)

    async def take(self, limit: int, after_id: int = 0) -> list[Row]:
        return await self._call(self.outbox.take, limit, after_id)

    async def ack(self, ids: Sequence[int], payload_bytes: int | None = None) -> int:
        return await self._call(self.outbox.ack, ids, payload_bytes)

    async def reject(self, ids: Sequence[int], reason: str, stage: str = "publish") -> int:
        return await self._call(self.outbox.reject, ids, reason, stage)

    async def dead_letter_input(self, letters: Sequence[DeadInput]) -> None:
        await self._call(self.outbox.dead_letter_input, letters)

    async def close(self) -> None:
        try:
            await self._call(self.outbox.close)
        finally:
            self._executor.shutdown(wait=True)
