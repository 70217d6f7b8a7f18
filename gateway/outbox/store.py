"""The outbox: a SQLite file that holds every accepted event until the broker
acknowledged it (store-and-forward). Schema: ``tidegate.outbox.schema``.

- ``open`` compares the file with its ledger (``tidegate.outbox.ledger.file``,
  ``tidegate.outbox.ledger.reconcile``): a damaged, emptied or cut file is counted as
  a loss and no source's ``seq`` is ever used twice.
- ``put`` commits a batch; only then are its events accepted. It assigns each
  event its per-source ``seq`` in the same transaction (above the ledger's
  reserved mark only after raising it), so ``seq`` survives restarts and has
  no gaps among accepted events. When the outbox is full (``max_bytes``, or
  what the disk holds: ``tidegate.outbox.disk``) the policy decides: drop the
  oldest events of the lowest priority class, drop the newest, or refuse
  (``OutboxFull``, backpressure). Every drop is counted by reason in the
  ``counters`` table.
- ``take`` returns the oldest undelivered rows, highest priority class first,
  after per-class cursors (rows already handed out are not handed out twice;
  after a reconnect the publisher starts again from the oldest). Each row's
  checksum is verified first (``tidegate.outbox.integrity``).
- ``ack`` deletes rows the broker acknowledged; nothing is deleted before
  (``tidegate.outbox.delivery``).
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

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from tidegate.clock import ClockWatcher
from tidegate.errors import BufferError_
from tidegate.outbox.clock import correct_clock, purge_expired
from tidegate.outbox.dead import dead_letter_input, reject
from tidegate.outbox.delivery import ack, delete_undeleted, within
from tidegate.outbox.disk import PAGE, Disk, OutboxNoSpace, raise_if_no_space
from tidegate.outbox.facade import AsyncOutbox
from tidegate.outbox.files import make_private, make_private_dirs
from tidegate.outbox.integrity import (
    CHECKSUM_MISMATCH,
    CHECKSUM_MISSING,
    DAMAGED,
    UNKNOWN_ROUTE,
    WRONG_TYPE,
    checksum,
)
from tidegate.outbox.ledger.file import Ledger, ledger_path
from tidegate.outbox.ledger.reconcile import Recovery
from tidegate.outbox.ledger.sync import load_usable, reconcile_at_open, snapshot_to_ledger
from tidegate.outbox.ledger.undelivered import Tracker
from tidegate.outbox.lock import OutboxLock
from tidegate.outbox.migrate import configure
from tidegate.outbox.recovery import check_empty, open_or_recover
from tidegate.outbox.schema import (
    ACCEPTED_TOTAL,
    ADMIN_GENERATION,
    CLASS_TABLES,
    CRC_FROM_ID,
    INTERNAL_COUNTERS,
    MEMORY_APPLIED,
    NEXT_ID,
    ROW_OVERHEAD,
)
from tidegate.outgoing import Outgoing
from tidegate.payload import encode_event
from tidegate.priority import PRIORITIES

log = logging.getLogger(__name__)

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
    undeleted: int = 0
    """Delivered events whose delete failed so far (a full disk); never sent again."""
    pending_drops: dict[str, int] = field(default_factory=dict)
    """Drops counted but not yet committed to the file (kept in the ledger meanwhile);
    ``drops`` does not include them."""
    recovery: Recovery | None = None
    """What the outbox found at open if it had lost events or had to skip seqs."""


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
        self._ledger = Ledger(ledger_path(path))
        self._accepted_total = 0
        self._memory_noted = 0
        """Memory drops noted (ledger), in total; ``_memory_applied`` of them are in the file."""
        self._memory_applied = 0
        self._undeleted: list[tuple[int, int]] = []
        """Delivered row ids whose delete failed (never handed out again)."""
        self._disk: Disk | None = None
        self._lock = OutboxLock(path)
        self._tracker = Tracker()
        """Which rows are undelivered, for the ledger (``tidegate.outbox.ledger.undelivered``)."""

    # -- lifecycle ----------------------------------------------------------------

    def _configure(self, db: sqlite3.Connection) -> None:
        # Connecting created the file (empty) if it was missing: owner-only before a byte
        # is written, and before SQLite makes its -wal and -shm files with its mode.
        make_private(self.path)
        plan = self._disk.plan if self._disk is not None else None
        configure(
            db,
            self.path,
            durability=self.durability,
            **({} if plan is None else {"wal_pages": plan.wal_pages, "wal_limit": plan.wal_limit}),
        )

    def open(self) -> None:
        self._resolve_and_lock()
        try:
            self._open()
        except BaseException as exc:
            # A disk too full to open on: the gateway waits for room (AsyncOutbox),
            # keeping the outbox its own meanwhile.
            self._abandon(keep_lock=isinstance(exc, OutboxNoSpace))
            raise

    def _resolve_and_lock(self) -> None:
        """The real file (a symlinked ``buffer.path``: moving aside, the disk's room and the
        ledger act on the file itself), then one gateway per outbox (``outbox_lock``)."""
        real = Path(os.path.realpath(self.path))
        try:
            make_private_dirs(real.parent)
        except OSError as exc:
            raise_if_no_space(real, exc, "create the directory of")
            raise BufferError_(f"cannot create {real.parent}: {exc.strerror}") from None
        if real != self.path:
            self.path = real
            self._ledger = Ledger(ledger_path(real))
            self._lock = OutboxLock(real)
        if not self._lock.held:  # held still if the last try found the disk full
            self._lock.acquire()

    def _abandon(self, keep_lock: bool = False) -> None:
        """An open that failed: let go of what it took, writing nothing."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._ledger.close()
        if not keep_lock:
            self._lock.release()

    def _open(self) -> None:
        try:
            make_private_dirs(self.path.parent)
        except OSError as exc:
            raise BufferError_(f"cannot create {self.path.parent}: {exc.strerror}") from None
        self._disk = Disk(self.path)
        # A start on a full disk must not fail for want of the few pages an open writes.
        self._disk.release_for_start()
        ledger = self._ledger
        status = load_usable(ledger)
        try:
            # A 0-byte or missing file where the ledger says events were is damage too.
            recreated = (
                check_empty(self.path) if status == "ok" and ledger.state.has_history else None
            )
        except OSError as exc:
            raise BufferError_(f"cannot move the empty outbox {self.path} aside: {exc}") from None
        db, moved = open_or_recover(self.path, self._configure)
        self._db = db
        if moved is not None:
            recreated = moved
        if recreated is not None and recreated.where is not None:
            self.stats.moved_aside = recreated.where
        try:
            self._load_state(db)
            reconcile_at_open(self, status, recreated)
        except sqlite3.Error as exc:
            raise_if_no_space(self.path, exc)
            raise BufferError_(f"cannot read the outbox {self.path}: {exc}") from None
        except OSError as exc:
            raise_if_no_space(self.path, exc)
            raise BufferError_(f"cannot write the outbox ledger {ledger.path}: {exc}") from None
        try:
            self._refresh_bound(0)
        except sqlite3.Error as exc:
            raise BufferError_(f"cannot read the outbox {self.path}: {exc}") from None
        if self.stats.depth:
            log.info("outbox %s holds %d undelivered events", self.path, self.stats.depth)

    def _load_state(self, db: sqlite3.Connection) -> None:
        db.execute("INSERT OR IGNORE INTO boots (boot) VALUES (?)", (self.clock.boot_id,))
        (self._boot_row,) = db.execute(
            "SELECT id FROM boots WHERE boot = ?", (self.clock.boot_id,)
        ).fetchone()
        self._read_drops(db)
        self._admin_generation = self._read_counter(db, ADMIN_GENERATION)
        self._memory_applied = self._read_counter(db, MEMORY_APPLIED)
        self._load_ids(db)
        self.recount()

    def _read_drops(self, db: sqlite3.Connection) -> None:
        self.stats.drops = {
            name: value
            for name, value in db.execute("SELECT name, value FROM counters")
            if name not in INTERNAL_COUNTERS
        }

    def _snapshot_to_ledger(self) -> None:
        """Bring the ledger's copy of the outbox's state up to date (in memory)."""
        snapshot_to_ledger(self)

    def _sync_ledger(self) -> None:
        """After a commit: rewrite the ledger in place (no fsync; see outbox_ledger)."""
        self._snapshot_to_ledger()
        self._ledger.write()

    def _release_if_full(self, exc: sqlite3.Error) -> bool:
        """SQLite failed: if the disk is full, give back the reserve. True if that made room."""
        return self._disk is not None and self._disk.release_if_full(exc)

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

    def _refresh_bound(self, incoming: int) -> None:
        """The bound in force: ``max_bytes``, or less if the disk holds less now (other
        files grow too: re-checked at every commit). Also remakes the reserve when there
        is room for it again."""
        disk = self._disk
        if disk is None:
            self.stats.max_bytes = self.limits.max_bytes
            return
        db = self.db
        # This commit's own WAL frames: its rows, and as many again if it drops the oldest.
        txn = int(incoming * disk.factor * 2.2) + 16 * PAGE
        now = time.monotonic()
        if disk.can_skip_check(now, txn):
            return
        disk.checked_at = now
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (free_pages,) = db.execute("PRAGMA freelist_count").fetchone()
        disk.measure(pages, free_pages, self.stats.bytes + self.stats.dead_letter_bytes)
        room = disk.room(pages, free_pages, txn)
        self.stats.max_bytes = disk.bound(self.limits.max_bytes, self.stats.bytes, room)
        if not db.in_transaction and not disk.has_reserve:
            disk.ensure_reserve()

    def close(self) -> None:
        if self._db is not None:
            # The ledger at a stop describes the file as it is now: an admin change
            # (a purge) since the last commit is in it, so it is never taken for a loss.
            with contextlib.suppress(sqlite3.Error, BufferError_):
                self._sync_with_admin_changes()
            self._snapshot_to_ledger()
            self._db.close()
            self._db = None
            self._ledger.state.clean = True
            with contextlib.suppress(OSError):
                self._ledger.write(durable=True)
        self._ledger.close()
        self._lock.release()

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
        """``tidegate buffer`` may have replayed or purged rows: re-read what it touches,
        and describe the file as it is now in the ledger (a purge is not a loss).

        Called at the start of every commit, inside its write transaction (no admin
        write can slip in after it; the commit rewrites the ledger), and by ``take``.
        Also makes sure the ledger file is still there (``Ledger.verify``).
        """
        db = self.db
        self._ledger.verify()
        generation = self._read_counter(db, ADMIN_GENERATION)
        if generation != self._admin_generation:
            self._admin_generation = generation
            self._load_ids(db)
            self.recount()
            self._read_drops(db)  # purged_outbox: the ledger's copy must have it too
            self._tracker.stale = True
            if not db.in_transaction:
                self._sync_ledger()

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
            if self._ledger.needs_reservation(seqs):
                self._reserve(seqs)
            if self._undeleted:
                delete_undeleted(self, db)
            self._refresh_bound(incoming)
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
            by_class: list[list[tuple[int, int, int, float, int, int, bytes, int]]] = [[], [], []]
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
                        checksum(payload),
                    )
                )
                row_id += 1
            for priority, rows in enumerate(by_class):
                if rows:
                    db.executemany(
                        f"INSERT INTO {CLASS_TABLES[priority]} "  # noqa: S608 - constant names
                        "(id, source_id, route_id, accepted, synced, boot_id, payload, crc) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
            db.executemany(
                "UPDATE sources SET last_seq = ? WHERE id = ?",
                [(n, source_ids[s]) for s, n in seqs.items() if self._last_seq.get(s) != n],
            )
            memory = self._memory_noted - self._memory_applied
            self._bump(db, "dropped_memory", memory)
            db.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)",
                [
                    (NEXT_ID, row_id),
                    (ACCEPTED_TOTAL, self._accepted_total + keep),
                    *([(MEMORY_APPLIED, self._memory_noted)] if memory else []),
                ],
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
                self._release_if_full(exc)  # the next try (the pipeline's) has room to drop
                raise BufferError_(
                    f"cannot commit {len(items)} events to the outbox: {exc}"
                ) from None
            raise
        self._next_id = row_id
        self._last_seq = seqs
        self._accepted_total += keep
        if self._undeleted:
            self._undeleted = []
            stats.undeleted = 0
        if memory:
            self._memory_applied = self._memory_noted
            stats.pending_drops.pop("dropped_memory", None)
        for priority, rows in enumerate(by_class):
            stats.depth_by_priority[priority] += len(rows)
        stats.depth += keep
        stats.bytes += incoming
        stats.accepted += keep
        stats.commits += 1
        self._sync_ledger()
        if self._disk is not None and not self._disk.has_reserve:
            self._disk.ensure_reserve()
        return keep

    def _reserve(self, seqs: dict[str, int]) -> None:
        """Make the ledger's marks cover ``seqs`` before any of them is committed."""
        try:
            self._ledger.reserve(seqs)
        except OSError as exc:
            raise BufferError_(
                f"cannot reserve seqs in the outbox ledger {self._ledger.path}: {exc}"
            ) from None

    def note_memory_drops(self, n: int) -> None:
        """Events dropped outside the outbox (memory full while commits fail): counted at
        once (``stats.pending_drops``, and the ledger, written in place: a full disk
        does not stop it), and in the file with the next commit."""
        if n <= 0:
            return
        self._memory_noted += n
        self.stats.pending_drops["dropped_memory"] = self._memory_noted - self._memory_applied
        self._sync_ledger()

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
        damaged: dict[str, list[int]] = {}
        try:
            self._sync_with_admin_changes()  # a replay may have added routes
            routes = self._routes
            for priority, table in enumerate(CLASS_TABLES):
                after = cursors[priority]
                while len(out) < limit:
                    want = limit - len(out)
                    # A damaged header byte can make any value another type (a TEXT
                    # payload may not even be UTF-8): read as bytes, and typed checked.
                    rows = self.db.execute(
                        "SELECT id, route_id, CAST(payload AS BLOB), IIF(typeof(crc) = "  # noqa: S608
                        "'integer', crc, NULL), typeof(payload) = 'blob' AND typeof(route_id) "
                        "= 'integer' AND typeof(crc) IN ('integer', 'null'), crc IS NULL AND "
                        "id >= (SELECT value FROM counters WHERE name = ?) "
                        f"FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                        (CRC_FROM_ID, after, want),
                    ).fetchall()
                    for i, r, p, crc, typed, unsummed in rows:
                        if self._undeleted and within(i, self._undeleted):
                            continue  # delivered already; only its delete is pending
                        # Checked before it can be published: damage is never sent as data.
                        if not typed:
                            damaged.setdefault(WRONG_TYPE, []).append(i)
                        elif unsummed:  # stored with a checksum that now reads NULL
                            damaged.setdefault(CHECKSUM_MISSING, []).append(i)
                        elif crc is not None and checksum(p) != crc:
                            damaged.setdefault(CHECKSUM_MISMATCH, []).append(i)
                        elif r not in routes:
                            damaged.setdefault(UNKNOWN_ROUTE, []).append(i)
                        else:
                            out.append(Row(i, *routes[r], p, priority))
                    if len(rows) < want:
                        break
                    after = rows[-1][0]
        except sqlite3.Error as exc:
            raise BufferError_(f"cannot read undelivered events from the outbox: {exc}") from None
        for reason, ids in damaged.items():
            moved = self.reject(ids, reason, stage="outbox", count_as=DAMAGED)
            log.error("%d stored events failed a check (%s): moved to dead letters", moved, reason)
        return out

    def ack(self, ids: Iterable[int], payload_bytes: int | None = None) -> int:
        """Delete delivered rows (``tidegate.outbox.delivery``). Returns how many went."""
        return ack(self, ids, payload_bytes)

    def reject(
        self, ids: Sequence[int], reason: str, stage: str = "publish", count_as: str = ""
    ) -> int:
        """Move rows to the dead-letter table with ``reason`` (``tidegate.outbox.dead``)."""
        return reject(self, ids, reason, stage, count_as)

    def dead_letter_input(self, letters: Sequence[DeadInput]) -> None:
        """Keep input that never became an event (a garbage frame, a failed parse)."""
        dead_letter_input(self, letters)

    def purge_expired(self, now: float) -> int:
        """Drop events older than ``max_age`` (oldest first); only on a trusted clock."""
        return purge_expired(self, now)

    def correct_clock(self, delta: float) -> int:
        """Shift this boot's undelivered events by a measured wall-clock step."""
        return correct_clock(self, delta)

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


__all__ = [
    "PRIORITIES",
    "ROW_OVERHEAD",
    "AsyncOutbox",
    "DeadInput",
    "Outbox",
    "OutboxFull",
    "OutboxLimits",
    "Row",
]
