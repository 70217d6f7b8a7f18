"""The outbox: a SQLite file that holds every accepted event until the broker
acknowledged it (store-and-forward). Schema: ``tidegate.outbox_schema``.

- ``put`` commits a batch; only then are its events accepted. It assigns each
  event its per-source ``seq`` in the same transaction, so ``seq`` survives
  restarts and has no gaps among accepted events. When the outbox is full
  (``max_bytes``) the policy decides: drop the oldest events of the lowest
  priority class, drop the newest, or refuse (``OutboxFull``, backpressure).
  Every drop is counted by reason in the ``counters`` table.
- ``take`` returns the oldest undelivered rows, highest priority class first,
  after per-class cursors (rows already handed out are not handed out twice;
  after a reconnect the publisher starts again from the oldest).
- ``ack`` deletes rows the broker acknowledged; nothing is deleted before.
- ``reject`` moves rows to the ``dead_letters`` table with a reason.
- ``purge_expired`` drops events older than ``max_age`` — only while the wall
  clock is trusted, and on timestamps corrected for clock steps, so a clock
  jump never purges fresh data.
- ``correct_clock`` shifts the timestamps of this boot's events by a measured
  wall-clock step.

All methods are synchronous and must be called from one thread; the pipeline
runs them on the outbox's own worker thread (``AsyncOutbox``) so commits never
block the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, NamedTuple, ParamSpec, TypeVar

import orjson

from tidegate.clock import ClockWatcher
from tidegate.errors import BufferError_
from tidegate.outbox_recovery import Unusable, open_or_recover
from tidegate.outbox_schema import (
    ADMIN_GENERATION,
    CLASS_TABLES,
    INTERNAL_COUNTERS,
    NEXT_ID,
    PRIORITIES,
    SCHEMA,
    SCHEMA_VERSION,
)
from tidegate.outgoing import Outgoing
from tidegate.payload import encode_event
from tidegate.timefmt import rfc3339

log = logging.getLogger(__name__)

ROW_OVERHEAD = 48
"""Bytes a row costs beyond its payload (ids, timestamps, b-tree cell): what
``max_bytes`` counts besides payloads."""

WhenFull = Literal["drop_oldest", "drop_newest", "block"]


class OutboxFull(BufferError_):
    """``when_full: block`` and no room: the caller holds the events and retries."""


class Row(NamedTuple):
    id: int
    topic: str
    qos: int
    retain: bool
    payload: bytes
    priority: int


class DeadInput(NamedTuple):
    at: float
    stage: str
    reason: str
    source: str | None
    raw: bytes


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    max_bytes: int = 256 * 1024 * 1024
    when_full: WhenFull = "drop_oldest"
    max_age: float | None = None
    dead_letter_max_bytes: int = 16 * 1024 * 1024


@dataclass(slots=True)
class OutboxStats:
    depth: int = 0
    bytes: int = 0
    """Payload bytes plus ROW_OVERHEAD per event: what ``max_bytes`` bounds."""
    depth_by_priority: list[int] = field(default_factory=lambda: [0, 0, 0])
    accepted: int = 0
    acked: int = 0
    dead_letters: int = 0
    dead_letter_bytes: int = 0
    commits: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    """Persistent counters by reason (dropped_full, dropped_expired, ...)."""
    max_bytes: int = 0
    """The bound in force (``max_bytes``, lowered if the disk has less room)."""
    moved_aside: str | None = None
    """Where a corrupt outbox was moved at open, if it was."""


class Outbox:
    def __init__(
        self,
        path: Path,
        gateway: str,
        durability: Literal["batch", "fsync"] = "batch",
        limits: OutboxLimits | None = None,
        clock: ClockWatcher | None = None,
    ) -> None:
        self.path = path
        self.gateway = gateway
        self.durability = durability
        self.limits = limits or OutboxLimits()
        self.clock = clock or ClockWatcher()
        self.stats = OutboxStats(max_bytes=self.limits.max_bytes)
        self._db: sqlite3.Connection | None = None
        self._last_seq: dict[str, int] = {}
        self._source_ids: dict[str, int] = {}
        self._route_ids: dict[tuple[str, int, bool], int] = {}
        self._routes: dict[int, tuple[str, int, bool]] = {}
        self._boot_row = 0
        self._next_id = 1
        self._admin_generation = 0
        self._uncommitted: dict[str, int] = {}
        """Counter increases of the open transaction (visible once it commits)."""

    # -- lifecycle ----------------------------------------------------------------

    def _configure(self, db: sqlite3.Connection) -> None:
        # Small pages: a commit rewrites every page it touches (the sources row, the
        # counters, b-tree interiors), so on an SD card 1 KiB pages write about half
        # the bytes of 4 KiB ones per small commit (bench/outbox_durability.py).
        # It only takes effect on a new file (before WAL mode is set).
        db.execute("PRAGMA page_size=1024")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=" + ("FULL" if self.durability == "fsync" else "NORMAL"))
        db.execute("PRAGMA busy_timeout=5000")
        # Keep the WAL from staying large on an SD card after a burst.
        db.execute("PRAGMA journal_size_limit=8388608")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            # A newer tidegate wrote it: refuse rather than misread or move its events.
            raise BufferError_(
                f"the outbox {self.path} has schema {version}, newer than this tidegate "
                f"({SCHEMA_VERSION}); upgrade tidegate or point buffer.path elsewhere"
            )
        has_tables = db.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'outbox'"
        ).fetchone()[0]
        if version < SCHEMA_VERSION and has_tables:
            raise Unusable(f"an outbox from an older tidegate (schema {version or 1})")
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BufferError_(f"cannot create {self.path.parent}: {exc.strerror}") from None
        db, moved = open_or_recover(self.path, self._configure)
        self._db = db
        try:
            self._load_state(db)
            if moved is not None:
                self.stats.moved_aside = str(moved)
                db.execute("BEGIN IMMEDIATE")
                self._bump(db, "corrupt_recoveries", 1)
                self._commit()
        except sqlite3.Error as exc:
            raise BufferError_(f"cannot read the outbox {self.path}: {exc}") from None
        self._fit_bound_to_disk()
        if self.stats.depth:
            log.info("outbox %s holds %d undelivered events", self.path, self.stats.depth)

    def _load_state(self, db: sqlite3.Connection) -> None:
        db.execute("INSERT OR IGNORE INTO boots (boot) VALUES (?)", (self.clock.boot_id,))
        (self._boot_row,) = db.execute(
            "SELECT id FROM boots WHERE boot = ?", (self.clock.boot_id,)
        ).fetchone()
        self.stats.drops = {
            name: value
            for name, value in db.execute("SELECT name, value FROM counters")
            if name not in INTERNAL_COUNTERS
        }
        self._admin_generation = self._read_counter(db, ADMIN_GENERATION)
        self._load_ids(db)
        self.recount()

    def _load_ids(self, db: sqlite3.Connection) -> None:
        """Sources (with their last seq) and routes as the file has them."""
        self._source_ids.clear()
        self._last_seq.clear()
        for source_id, source, last_seq in db.execute("SELECT id, source, last_seq FROM sources"):
            self._source_ids[source] = source_id
            self._last_seq[source] = last_seq
        self._route_ids.clear()
        self._routes.clear()
        for route_id, topic, qos, retain in db.execute("SELECT id, topic, qos, retain FROM routes"):
            route = (topic, qos, bool(retain))
            self._route_ids[route] = route_id
            self._routes[route_id] = route
        self._next_id = max(self._next_id, self._read_counter(db, NEXT_ID))

    def recount(self) -> None:
        """Count depth and bytes from the tables (at open, and after admin changes)."""
        db = self.db
        depth = bytes_ = top = 0
        for priority, table in enumerate(CLASS_TABLES):
            n, size, high = db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), COALESCE(MAX(id), 0) "  # noqa: S608 - table names are constants
                f"FROM {table}"
            ).fetchone()
            self.stats.depth_by_priority[priority] = n
            depth += n
            bytes_ += size + n * ROW_OVERHEAD
            top = max(top, high)
        dead, dead_bytes = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM dead_letters"
        ).fetchone()
        self.stats.depth, self.stats.bytes = depth, bytes_
        self.stats.dead_letters, self.stats.dead_letter_bytes = dead, dead_bytes
        self._next_id = max(self._next_id, top + 1)

    def _fit_bound_to_disk(self) -> None:
        """Never promise more room than the disk has: lower the bound, and say so."""
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return
        available = free + self.stats.bytes
        # The file runs ~30% larger than its contents (WAL, free pages); keep 10% spare.
        room = int(available * 0.9 / 1.3)
        if room < self.limits.max_bytes:
            log.warning(
                "buffer.max_bytes is %d but %s has room for about %d; using that bound",
                self.limits.max_bytes,
                self.path.parent,
                room,
            )
            self.stats.max_bytes = room
        else:
            self.stats.max_bytes = self.limits.max_bytes

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise BufferError_("the outbox is not open")
        return self._db

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _read_counter(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _sync_with_admin_changes(self) -> None:
        """``tidegate buffer`` may have replayed or purged rows: re-read what it touches.

        Called inside a write transaction, so no admin write can slip in after it.
        """
        db = self.db
        generation = self._read_counter(db, ADMIN_GENERATION)
        if generation != self._admin_generation:
            self._admin_generation = generation
            self._load_ids(db)
            self.recount()

    def _bump(self, db: sqlite3.Connection, name: str, n: int) -> None:
        """Add to a counter inside the caller's transaction; ``_commit`` makes it visible."""
        if n <= 0:
            return
        db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )
        self._uncommitted[name] = self._uncommitted.get(name, 0) + n

    def _commit(self) -> None:
        self.db.execute("COMMIT")
        for name, n in self._uncommitted.items():
            self.stats.drops[name] = self.stats.drops.get(name, 0) + n
        self._uncommitted.clear()

    def count_drops(self, reason: str, n: int) -> None:
        """Record drops that happened outside the outbox (e.g. memory overflow)."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            self._bump(db, reason, n)
            self._commit()
        except sqlite3.Error as exc:
            self._rollback()
            raise BufferError_(f"cannot record {n} dropped events: {exc}") from None

    def _source_id(self, source: str) -> int:
        source_id = self._source_ids.get(source)
        if source_id is None:
            cursor = self.db.execute(
                "INSERT INTO sources (source, last_seq) VALUES (?, 0)", (source,)
            )
            assert cursor.lastrowid is not None
            source_id = self._source_ids[source] = cursor.lastrowid
        return source_id

    def _route_id(self, route: tuple[str, int, bool]) -> int:
        route_id = self._route_ids.get(route)
        if route_id is None:
            cursor = self.db.execute(
                "INSERT INTO routes (topic, qos, retain) VALUES (?, ?, ?)",
                (route[0], route[1], int(route[2])),
            )
            assert cursor.lastrowid is not None
            route_id = self._route_ids[route] = cursor.lastrowid
            self._routes[route_id] = route
        return route_id

    def _drop_oldest(self, db: sqlite3.Connection, need: int, down_to: int) -> tuple[int, int]:
        """Free ``need`` bytes from the oldest events, lowest class first, never from a
        class above ``down_to``. Returns (events dropped, bytes freed)."""
        dropped = freed = 0
        for priority in range(len(CLASS_TABLES) - 1, down_to - 1, -1):
            table = CLASS_TABLES[priority]
            while freed < need:
                rows = db.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT ?) "  # noqa: S608
                    "RETURNING LENGTH(payload)",
                    (max(16, min(5000, (need - freed) // 200 + 1)),),
                ).fetchall()
                if not rows:
                    break
                size = sum(r[0] for r in rows) + len(rows) * ROW_OVERHEAD
                freed += size
                dropped += len(rows)
                self.stats.depth_by_priority[priority] -= len(rows)
                self.stats.depth -= len(rows)
                self.stats.bytes -= size
        return dropped, freed

    # -- the contract --------------------------------------------------------------

    def put(self, items: Sequence[Outgoing]) -> int:
        """Commit ``items``; when this returns they are accepted (or counted as dropped).

        Returns how many were stored. Raises OutboxFull (``when_full: block``)
        when they do not fit, BufferError_ when SQLite fails (a full disk):
        nothing of ``items`` is stored then, and the caller keeps them.
        """
        if not items:
            return 0
        db = self.db
        stats = self.stats
        added_sources: set[str] = set()
        added_routes: set[tuple[str, int, bool]] = set()
        try:
            db.execute("BEGIN IMMEDIATE")
            # Inside the transaction: an admin write cannot slip in between.
            self._sync_with_admin_changes()
            now = time.time()
            synced = self.clock.trusted
            seqs = dict(self._last_seq)  # kept only if the transaction commits
            gateway = self.gateway
            known_sources, known_routes = self._source_ids, self._route_ids
            payloads = []
            incoming = 0
            for event, topic, qos, retain, _ in items:
                source = event.source
                seq = seqs.get(source, 0) + 1
                seqs[source] = seq
                if source not in known_sources:
                    added_sources.add(source)
                if (topic, qos, retain) not in known_routes:
                    added_routes.add((topic, qos, retain))
                payload = encode_event(event, seq, gateway, synced=synced)
                payloads.append(payload)
                incoming += len(payload)
            incoming += len(items) * ROW_OVERHEAD
            keep = len(items)
            over = stats.bytes + incoming - stats.max_bytes
            if over > 0:
                policy = self.limits.when_full
                if policy == "block":
                    raise OutboxFull(
                        f"outbox full ({stats.bytes} of {stats.max_bytes} bytes); holding events"
                    )
                if policy == "drop_newest":
                    keep, incoming, seqs = self._fit_newest(
                        items, payloads, stats.max_bytes - stats.bytes
                    )
                    self._bump(db, "dropped_newest", len(items) - keep)
                else:
                    # Lowest incoming class first: each class may only push out stored
                    # events of its own class or lower, oldest first; what still does not
                    # fit goes from its own newest. A newer low event never costs an
                    # older higher one its place.
                    dropped = 0
                    skip: set[int] = set()
                    for klass in sorted({o.priority for o in items}, reverse=True):
                        if over <= 0:
                            break
                        gone, freed = self._drop_oldest(db, over, down_to=klass)
                        dropped += gone
                        over -= freed
                        if over > 0:
                            own = _newest_first(items, payloads, klass, over)
                            skip |= own
                            dropped += len(own)
                            over -= sum(len(payloads[i]) + ROW_OVERHEAD for i in own)
                    if skip:
                        incoming -= sum(len(payloads[i]) + ROW_OVERHEAD for i in skip)
                        items = [o for i, o in enumerate(items) if i not in skip]
                        payloads = [p for i, p in enumerate(payloads) if i not in skip]
                        keep = len(items)
                    self._bump(db, "dropped_full", dropped)
            for source in added_sources:
                self._source_id(source)
            for route in added_routes:
                self._route_id(route)
            source_ids, route_ids = self._source_ids, self._route_ids
            boot = self._boot_row
            flag = int(synced)
            by_class: list[list[tuple[int, int, int, float, int, int, bytes]]] = [[], [], []]
            row_id = self._next_id
            for outgoing, payload in zip(items[:keep], payloads[:keep], strict=True):
                by_class[outgoing.priority].append(
                    (
                        row_id,
                        source_ids[outgoing.event.source],
                        route_ids[(outgoing.topic, outgoing.qos, outgoing.retain)],
                        now,
                        flag,
                        boot,
                        payload,
                    )
                )
                row_id += 1
            for priority, rows in enumerate(by_class):
                if rows:
                    db.executemany(
                        f"INSERT INTO {CLASS_TABLES[priority]} "  # noqa: S608 - constant names
                        "(id, source_id, route_id, accepted, synced, boot_id, payload) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
            db.executemany(
                "UPDATE sources SET last_seq = ? WHERE id = ?",
                [(n, source_ids[s]) for s, n in seqs.items() if self._last_seq.get(s) != n],
            )
            db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)",
                (NEXT_ID, row_id),
            )
            self._commit()
        except OutboxFull:
            self._rollback()
            raise
        except BaseException as exc:
            self._rollback()
            self._forget(added_sources, added_routes)
            with contextlib.suppress(sqlite3.Error):
                self.recount()  # drops inside the failed transaction did not happen
            if isinstance(exc, sqlite3.Error):
                raise BufferError_(
                    f"cannot commit {len(items)} events to the outbox: {exc}"
                ) from None
            raise
        self._next_id = row_id
        self._last_seq = seqs
        for priority, rows in enumerate(by_class):
            stats.depth_by_priority[priority] += len(rows)
        stats.depth += keep
        stats.bytes += incoming
        stats.accepted += keep
        stats.commits += 1
        return keep

    def _fit_newest(
        self, items: Sequence[Outgoing], payloads: list[bytes], room: int
    ) -> tuple[int, int, dict[str, int]]:
        """How many of ``items`` fit in ``room`` bytes, their size, and the seqs they use."""
        seqs = dict(self._last_seq)
        used = 0
        keep = 0
        for outgoing, payload in zip(items, payloads, strict=True):
            size = len(payload) + ROW_OVERHEAD
            if used + size > room:
                break
            used += size
            keep += 1
            seqs[outgoing.event.source] = seqs.get(outgoing.event.source, 0) + 1
        return keep, used, seqs

    def _forget(self, sources: Iterable[str], routes: Iterable[tuple[str, int, bool]]) -> None:
        for source in sources:
            self._source_ids.pop(source, None)
        for route in routes:
            self._routes.pop(self._route_ids.pop(route, -1), None)

    def take(self, limit: int, cursors: Sequence[int] = (0, 0, 0)) -> list[Row]:
        """Up to ``limit`` undelivered rows, highest class first, each class oldest
        first from after its cursor (``cursors[priority]`` is the last id handed out)."""
        out: list[Row] = []
        try:
            self._sync_with_admin_changes()  # a replay may have added routes
            routes = self._routes
            for priority, table in enumerate(CLASS_TABLES):
                if len(out) >= limit:
                    break
                rows = self.db.execute(
                    f"SELECT id, route_id, payload FROM {table} WHERE id > ? ORDER BY id LIMIT ?",  # noqa: S608
                    (cursors[priority], limit - len(out)),
                ).fetchall()
                out.extend(Row(i, *routes[r], p, priority) for i, r, p in rows)
        except sqlite3.Error as exc:
            raise BufferError_(f"cannot read undelivered events from the outbox: {exc}") from None
        return out

    def ack(self, ids: Iterable[int], payload_bytes: int | None = None) -> int:
        """Delete delivered rows. Returns how many were deleted.

        ``payload_bytes`` (the publisher knows it) saves reading the rows back;
        if some rows were dropped meanwhile by a bound or a purge, the counts
        are taken again from the tables instead.
        """
        id_list = sorted(ids)
        ranges = _ranges(id_list)
        if not ranges:
            return 0
        db = self.db
        deleted = size = 0
        exact = payload_bytes is None
        try:
            db.execute("BEGIN IMMEDIATE")
            for priority, table in enumerate(CLASS_TABLES):
                gone = 0
                for low, high in ranges:
                    if exact:
                        rows = db.execute(
                            f"DELETE FROM {table} WHERE id BETWEEN ? AND ? "  # noqa: S608
                            "RETURNING LENGTH(payload)",
                            (low, high),
                        ).fetchall()
                        gone += len(rows)
                        size += sum(r[0] for r in rows)
                    else:
                        gone += db.execute(
                            f"DELETE FROM {table} WHERE id BETWEEN ? AND ?",  # noqa: S608
                            (low, high),
                        ).rowcount
                self.stats.depth_by_priority[priority] -= gone
                deleted += gone
            self._commit()
        except sqlite3.Error as exc:
            self._rollback()
            with contextlib.suppress(sqlite3.Error):
                self.recount()
            raise BufferError_(f"cannot delete delivered events from the outbox: {exc}") from None
        self.stats.acked += deleted
        if exact or payload_bytes is None:
            self.stats.depth -= deleted
            self.stats.bytes -= size + deleted * ROW_OVERHEAD
        elif deleted == len(id_list):
            self.stats.depth -= deleted
            self.stats.bytes -= payload_bytes + deleted * ROW_OVERHEAD
        else:
            self.recount()  # rows dropped while in flight: their size is gone already
        return deleted

    def reject(self, ids: Sequence[int], reason: str, stage: str = "publish") -> int:
        """Move rows to the dead-letter table with ``reason``."""
        if not ids:
            return 0
        db = self.db
        now = time.time()
        moved = size = 0
        try:
            db.execute("BEGIN IMMEDIATE")
            for row_id in ids:
                for priority, table in enumerate(CLASS_TABLES):
                    row = db.execute(
                        f"DELETE FROM {table} WHERE id = ? RETURNING source_id, route_id, payload",  # noqa: S608
                        (row_id,),
                    ).fetchone()
                    if row is None:
                        continue
                    source = db.execute(
                        "SELECT source FROM sources WHERE id = ?", (row[0],)
                    ).fetchone()
                    topic = self._routes.get(row[1], ("",))[0]
                    db.execute(
                        "INSERT INTO dead_letters (at, stage, reason, source, topic, payload) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (now, stage, reason, source[0] if source else None, topic, row[2]),
                    )
                    self.stats.depth_by_priority[priority] -= 1
                    moved += 1
                    size += len(row[2])
                    break
            self._bound_dead_letters(db, size)
            self._commit()
        except sqlite3.Error as exc:
            self._rollback()
            raise BufferError_(f"cannot move events to the dead-letter table: {exc}") from None
        self.stats.depth -= moved
        self.stats.bytes -= size + moved * ROW_OVERHEAD
        self.stats.dead_letters += moved
        self.stats.dead_letter_bytes += size
        return moved

    def dead_letter_input(self, letters: Sequence[DeadInput]) -> None:
        """Keep input that never became an event (a garbage frame, a failed parse)."""
        if not letters:
            return
        db = self.db
        size = sum(len(letter.raw) for letter in letters)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO dead_letters (at, stage, reason, source, topic, payload) "
                "VALUES (?, ?, ?, ?, NULL, ?)",
                letters,
            )
            self._bound_dead_letters(db, size)
            self._commit()
        except sqlite3.Error as exc:
            self._rollback()
            raise BufferError_(f"cannot write dead letters: {exc}") from None
        self.stats.dead_letters += len(letters)
        self.stats.dead_letter_bytes += size

    def _bound_dead_letters(self, db: sqlite3.Connection, adding: int) -> None:
        over = self.stats.dead_letter_bytes + adding - self.limits.dead_letter_max_bytes
        evicted = 0
        while over > 0:
            rows = db.execute(
                "DELETE FROM dead_letters WHERE id IN "
                "(SELECT id FROM dead_letters ORDER BY id LIMIT 100) RETURNING LENGTH(payload)"
            ).fetchall()
            if not rows:
                break
            size = sum(r[0] or 0 for r in rows)
            over -= size
            evicted += len(rows)
            self.stats.dead_letters -= len(rows)
            self.stats.dead_letter_bytes -= size
        self._bump(db, "dead_letters_evicted", evicted)

    def purge_expired(self, now: float) -> int:
        """Drop events older than ``max_age`` (oldest first); only on a trusted clock."""
        max_age = self.limits.max_age
        if max_age is None or not self.clock.trusted:
            return 0
        cutoff = now - max_age
        db = self.db
        dropped = 0
        try:
            db.execute("BEGIN IMMEDIATE")
            for priority, table in enumerate(CLASS_TABLES):
                while True:
                    # Acceptance order is id order: the expired rows are a prefix. A
                    # clock that stepped back ends the prefix early: purge less, never more.
                    head = db.execute(
                        f"SELECT id, accepted, synced, boot_id FROM {table} "  # noqa: S608
                        "ORDER BY id LIMIT 1000"
                    ).fetchall()
                    last = None
                    for row_id, accepted, synced, boot in head:
                        # An untrusted time from an earlier boot was never corrected: its
                        # age is unknown, so it is never purged by age.
                        if accepted >= cutoff or (not synced and boot != self._boot_row):
                            break
                        last = row_id
                    if last is None:
                        break
                    rows = db.execute(
                        f"DELETE FROM {table} WHERE id <= ? RETURNING LENGTH(payload)",  # noqa: S608
                        (last,),
                    ).fetchall()
                    self.stats.depth_by_priority[priority] -= len(rows)
                    self.stats.depth -= len(rows)
                    self.stats.bytes -= sum(r[0] for r in rows) + len(rows) * ROW_OVERHEAD
                    dropped += len(rows)
                    if len(rows) < len(head):
                        break
            self._bump(db, "dropped_expired", dropped)
            self._commit()
        except sqlite3.Error as exc:
            self._rollback()
            with contextlib.suppress(sqlite3.Error):
                self.recount()
            raise BufferError_(f"cannot purge expired events: {exc}") from None
        return dropped

    def correct_clock(self, delta: float) -> int:
        """Shift this boot's undelivered events by a measured wall-clock step.

        Their ``time`` (in the payload) and acceptance time move by ``delta``;
        the payload loses ``time_synced: false`` and gains ``time_corrected: true``.
        """
        db = self.db
        corrected = 0
        try:
            db.execute("BEGIN IMMEDIATE")
            for table in CLASS_TABLES:
                rows = db.execute(
                    f"SELECT id, payload FROM {table} WHERE boot_id = ?",  # noqa: S608
                    (self._boot_row,),
                ).fetchall()
                updates = [(_shift_payload(p, delta), delta, row_id) for row_id, p in rows]
                db.executemany(
                    f"UPDATE {table} SET payload = ?, accepted = accepted + ?, synced = 1 "  # noqa: S608
                    "WHERE id = ?",
                    updates,
                )
                corrected += len(updates)
            self._bump(db, "clock_corrections", 1)
            self._commit()
        except sqlite3.Error as exc:
            self._rollback()
            raise BufferError_(f"cannot correct timestamps after a clock step: {exc}") from None
        with contextlib.suppress(sqlite3.Error):
            self.recount()  # payload sizes changed by a few bytes
        return corrected

    def last_seq(self, source: str) -> int:
        return self._last_seq.get(source, 0)

    def _rollback(self) -> None:
        self._uncommitted.clear()
        with contextlib.suppress(sqlite3.Error):  # no transaction may be open
            self.db.execute("ROLLBACK")


def _newest_first(
    items: Sequence[Outgoing], payloads: list[bytes], klass: int, need: int
) -> set[int]:
    """Indexes of incoming events of one class to drop, newest first, to free ``need`` bytes."""
    skip: set[int] = set()
    freed = 0
    for i in range(len(items) - 1, -1, -1):
        if freed >= need:
            break
        if items[i].priority == klass:
            skip.add(i)
            freed += len(payloads[i]) + ROW_OVERHEAD
    return skip


def _shift_payload(payload: bytes, delta: float) -> bytes:
    try:
        doc = orjson.loads(payload)
        doc["time"] = rfc3339(datetime.fromisoformat(doc["time"]).timestamp() + delta)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return payload  # not ours to fix: leave it as it is
    doc.pop("time_synced", None)
    doc["time_corrected"] = True
    return orjson.dumps(doc)


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

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run any Outbox method (or function of it) on the outbox thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def open(self) -> None:
        await self.call(self.outbox.open)

    async def put(self, items: Sequence[Outgoing]) -> int:
        return await self.call(self.outbox.put, items)

    async def take(self, limit: int, cursors: Sequence[int] = (0, 0, 0)) -> list[Row]:
        return await self.call(self.outbox.take, limit, cursors)

    async def ack(self, ids: Sequence[int], payload_bytes: int | None = None) -> int:
        return await self.call(self.outbox.ack, ids, payload_bytes)

    async def reject(self, ids: Sequence[int], reason: str, stage: str = "publish") -> int:
        return await self.call(self.outbox.reject, ids, reason, stage)

    async def dead_letter_input(self, letters: Sequence[DeadInput]) -> None:
        await self.call(self.outbox.dead_letter_input, letters)

    async def close(self) -> None:
        try:
            await self.call(self.outbox.close)
        finally:
            self._executor.shutdown(wait=True)


__all__ = ["PRIORITIES", "AsyncOutbox", "DeadInput", "Outbox", "OutboxFull", "OutboxLimits", "Row"]
