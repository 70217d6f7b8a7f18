"""The outbox: a SQLite file that holds every accepted event until the broker
acknowledged it (store-and-forward). Schema: ``tidegate.outbox.schema``.

``Outbox`` holds the open file's state and the helpers every change shares (its
transactions, counters, sources and routes, the ledger); each operation lives
in the module of its concept:

- ``open`` / ``close`` (``tidegate.outbox.lifecycle``): the lock, the file or a
  damaged one moved aside, and the ledger compared with it
  (``tidegate.outbox.ledger.sync``): a damaged, emptied or cut file is counted as
  a loss and no source's ``seq`` is ever used twice.
- ``put`` (``tidegate.outbox.commit``) commits a batch; only then are its events
  accepted. Each event gets its per-source ``seq`` in the same transaction.
  When the outbox is full (``max_bytes``, or what the disk holds) ``when_full``
  decides (``tidegate.outbox.bound``).
- ``take`` and ``ack`` (``tidegate.outbox.delivery``): the oldest undelivered
  rows, highest priority class first, each checked before it is handed out;
  nothing is deleted before the broker acknowledged it.
- ``reject`` and ``dead_letter_input`` (``tidegate.outbox.dead``).
- ``purge_expired`` and ``correct_clock`` (``tidegate.outbox.clock``): by age only
  on a trusted clock, and a measured clock step applied to this boot's events.
- ``stats`` (``tidegate.outbox.stats``): kept up to date by each of them.

All methods are synchronous and must be called from one thread; the pipeline
uses the outbox only through ``AsyncOutbox`` (``tidegate.outbox.facade``), which
runs them on the outbox's own worker thread so commits never block the event loop.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tidegate.clock import ClockWatcher
from tidegate.errors import BufferError_
from tidegate.outbox.clock import (
    ROUTE_EXPIRED,
    correct_clock,
    drop_route_expired,
    purge_expired,
)
from tidegate.outbox.commit import note_memory_drops, put
from tidegate.outbox.dead import DeadInput, dead_letter_input, reject
from tidegate.outbox.delivery import Row, ack, take
from tidegate.outbox.disk import Disk
from tidegate.outbox.fresh import FreshRows, NoFreshRows
from tidegate.outbox.ledger.file import Ledger, ledger_path
from tidegate.outbox.ledger.sync import snapshot_to_ledger
from tidegate.outbox.ledger.undelivered import Tracker
from tidegate.outbox.lifecycle import close_outbox, open_outbox
from tidegate.outbox.limits import Durability, OutboxFull, OutboxLimits, WhenFull
from tidegate.outbox.lock import OutboxLock
from tidegate.outbox.routing import route_topic
from tidegate.outbox.schema import ADMIN_GENERATION, NEXT_ID, ROW_OVERHEAD
from tidegate.outbox.segment_reader import Decoded
from tidegate.outbox.shares import UplinkShares
from tidegate.outbox.stats import OutboxStats, read_drops, recount
from tidegate.priority import PRIORITIES

if TYPE_CHECKING:
    from tidegate.outgoing import Outgoing


class Outbox:
    def __init__(
        self,
        path: Path,
        gateway: str,
        durability: Durability = "batch",
        limits: OutboxLimits | None = None,
        clock: ClockWatcher | None = None,
        *,
        uplinks: Sequence[str] = (),
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
        self.opened_after_clean_stop = False
        """Whether the last run closed the outbox (its ledger said so when it opened)."""
        self._route_topics: dict[int, str] = {}
        """Each route's topic as stored: with its uplinks and expiry (a dead letter keeps
        them, so a replay goes where the event went)."""
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
        self._resized_below = 0
        """Rows below this id may have changed size since they were handed out (a clock
        correction rewrote them): their acks count bytes from the file."""
        self._undeleted: list[tuple[int, int]] = []
        """Delivered row ids whose delete failed (never handed out again)."""
        self._disk: Disk | None = None
        self._lock = OutboxLock(path)
        self._tracker = Tracker()
        """Which rows are undelivered, for the ledger (``tidegate.outbox.ledger.undelivered``)."""
        self._fresh = (
            NoFreshRows(len(PRIORITIES)) if len(uplinks) > 1 else FreshRows(len(PRIORITIES))
        )
        self.shares = UplinkShares(self, uplinks) if len(uplinks) > 1 else None
        """Several uplinks: each one's delivery position (``tidegate.outbox.shares``)."""
        self._decoded = Decoded()
        """The segments take read last, decoded (``tidegate.outbox.segment_store``)."""
        """What this run committed and has not handed out yet (``tidegate.outbox.fresh``)."""

    @property
    def next_id(self) -> int:
        """The row id the next committed event gets."""
        return self._next_id

    # -- the contract ----------------------------------------------------------------

    def open(self) -> None:
        """Lock and open the file, compare it with its ledger (``tidegate.outbox.lifecycle``)."""
        open_outbox(self)

    def close(self) -> None:
        """Close the file and mark its ledger clean."""
        close_outbox(self)

    def put(self, items: Sequence[Outgoing]) -> int:
        """Commit ``items``; when this returns they are accepted (or counted as dropped).

        Returns how many were stored. Raises OutboxFull (``when_full: block``)
        when they do not fit, BufferError_ when SQLite fails (a full disk):
        nothing of ``items`` is stored then, and the caller keeps them.
        """
        return put(self, items)

    def note_memory_drops(self, n: int) -> None:
        """Events dropped outside the outbox (memory full while commits fail): counted at
        once, and in the file with the next commit (``tidegate.outbox.commit``)."""
        note_memory_drops(self, n)

    def take(self, limit: int, cursors: Sequence[int] = (0, 0, 0)) -> list[Row]:
        """Up to ``limit`` undelivered rows, highest class first, each class oldest
        first from after its cursor (``cursors[priority]`` is the last id handed out)."""
        return take(self, limit, cursors)

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

    def drop_route_expired(self, ids: Sequence[int], counter: str = ROUTE_EXPIRED) -> int:
        """Delete events past their route's ``expire_after``, and count them."""
        return drop_route_expired(self, ids, counter)

    def correct_clock(self, delta: float) -> int:
        """Shift this boot's undelivered events by a measured wall-clock step."""
        return correct_clock(self, delta)

    def last_seq(self, source: str) -> int:
        return self._last_seq.get(source, 0)

    def recount(self) -> None:
        """Count depth and bytes from the tables (at open, and after admin changes)."""
        recount(self)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise BufferError_("the outbox is not open")
        return self._db

    # -- shared by the operations: transactions and counters --------------------------

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

    def _rollback(self) -> None:
        self._uncommitted.clear()
        with contextlib.suppress(sqlite3.Error):  # no transaction may be open
            self.db.execute("ROLLBACK")

    def _rows_changed(self) -> None:
        """Stored rows went or changed otherwise than by an ack (a drop, an expiry, a dead
        letter, a clock correction, an admin change): what memory kept may be gone or
        stale, so ``take`` reads the file again (``tidegate.outbox.fresh``)."""
        self._fresh.forget(self._next_id - 1)
        self._decoded.clear()  # a clock correction rewrites segments

    def _release_if_full(self, exc: sqlite3.Error) -> bool:
        """SQLite failed: if the disk is full, give back the reserve. True if that made room."""
        return self._disk is not None and self._disk.release_if_full(exc)

    @staticmethod
    def _read_counter(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _read_drops(self, db: sqlite3.Connection) -> None:
        read_drops(self, db)

    # -- shared by the operations: the ledger and what tidegate buffer changed --------

    def _snapshot_to_ledger(self) -> None:
        """Bring the ledger's copy of the outbox's state up to date (in memory)."""
        snapshot_to_ledger(self)

    def _sync_ledger(self) -> None:
        """After a commit: rewrite the ledger in place (no fsync; see outbox_ledger)."""
        self._snapshot_to_ledger()
        self._ledger.write()

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
            self._rows_changed()
            self._read_drops(db)  # purged_outbox: the ledger's copy must have it too
            self._tracker.stale = True
            if not db.in_transaction:
                self._sync_ledger()

    # -- shared by the operations: sources and routes ---------------------------------

    def _load_ids(self, db: sqlite3.Connection) -> None:
        """Sources (with their last seq) and routes as the file has them."""
        self._source_ids.clear()
        self._last_seq.clear()
        for source_id, source, last_seq in db.execute("SELECT id, source, last_seq FROM sources"):
            self._source_ids[source] = source_id
            self._last_seq[source] = last_seq
        self._route_ids.clear()
        self._routes.clear()
        self._route_topics.clear()
        for route_id, topic, qos, retain in db.execute("SELECT id, topic, qos, retain FROM routes"):
            route = (topic, qos, bool(retain))
            self._route_ids[route] = route_id
            self._routes[route_id] = (route_topic(topic), qos, bool(retain))
            self._route_topics[route_id] = topic
        self._next_id = max(self._next_id, self._read_counter(db, NEXT_ID))

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
            self._routes[route_id] = (route_topic(route[0]), route[1], route[2])
            self._route_topics[route_id] = route[0]
        return route_id

    def _forget(self, sources: Iterable[str], routes: Iterable[tuple[str, int, bool]]) -> None:
        """Sources and routes added by a transaction that did not commit."""
        for source in sources:
            self._source_ids.pop(source, None)
        for route in routes:
            route_id = self._route_ids.pop(route, -1)
            self._routes.pop(route_id, None)
            self._route_topics.pop(route_id, None)


__all__ = [
    "PRIORITIES",
    "ROW_OVERHEAD",
    "DeadInput",
    "Durability",
    "Outbox",
    "OutboxFull",
    "OutboxLimits",
    "OutboxStats",
    "Row",
    "WhenFull",
]
