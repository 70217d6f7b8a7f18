"""The history file: every value for ``raw``, then min/mean/max/count buckets per tier.

One SQLite file of its own (WAL, ``synchronous=NORMAL``: a power cut loses at
most the last flush, and the history is not the outbox). Each ``write`` is one
transaction: the batch's values, its buckets for every tier, the markers,
retention and the byte bound. Buckets are computed with numpy from the batch
and merged into the stored ones with an upsert (counts and sums add, min and
max combine), so a bucket that spans several flushes is exact. Rollups are
keyed by their width in seconds, not a tier's position: changing the tiers
never mixes widths, and a width no longer configured is dropped at open.

The bound counts the pages in use (freed pages are reused, so the file stops
growing at about ``max_bytes``). Over it, the oldest rows of every table go
first, down to ``LOW_WATER`` of the bound so the next flushes have room
without another scan; the rows dropped are counted in ``meta``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tidegate.history.samples import Batch

LOW_WATER = 0.9
WAL_LIMIT = 4 * 1024 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, name TEXT NOT NULL, unit TEXT,
    UNIQUE (source, name));
CREATE TABLE IF NOT EXISTS samples (
    signal INTEGER NOT NULL, t REAL NOT NULL, v REAL NOT NULL,
    PRIMARY KEY (signal, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollups (
    every REAL NOT NULL, signal INTEGER NOT NULL, t REAL NOT NULL,
    n INTEGER NOT NULL, vmin REAL NOT NULL, vsum REAL NOT NULL, vmax REAL NOT NULL,
    PRIMARY KEY (every, signal, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS markers (
    source TEXT NOT NULL, name TEXT NOT NULL, t REAL NOT NULL, raised INTEGER NOT NULL,
    threshold REAL, PRIMARY KEY (source, name, t)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS markers_t ON markers (t);
CREATE TABLE IF NOT EXISTS tiers (every REAL PRIMARY KEY, keep REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""

UPSERT_BUCKET = """
INSERT INTO rollups (every, signal, t, n, vmin, vsum, vmax) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (every, signal, t) DO UPDATE SET
    n = n + excluded.n, vsum = vsum + excluded.vsum,
    vmin = min(vmin, excluded.vmin), vmax = max(vmax, excluded.vmax)
"""


@dataclass(frozen=True, slots=True)
class Tier:
    every: float
    keep: float


@dataclass(frozen=True, slots=True)
class Buckets:
    """One tier's buckets of a batch, one entry per (signal, bucket start)."""

    signal: np.ndarray
    start: np.ndarray
    count: np.ndarray
    vmin: np.ndarray
    vsum: np.ndarray
    vmax: np.ndarray


def bucketize(signal: np.ndarray, t: np.ndarray, v: np.ndarray, every: float) -> Buckets:
    """Group values by (signal, floor(t / every)) and reduce each group."""
    start = np.floor(t / every) * every
    order = np.lexsort((start, signal))
    signal, start, v = signal[order], start[order], v[order]
    change = np.empty(len(order), dtype=bool)
    if len(order):
        change[0] = True
        change[1:] = (signal[1:] != signal[:-1]) | (start[1:] != start[:-1])
    first = np.flatnonzero(change)
    count = np.diff(np.append(first, len(order)))
    return Buckets(
        signal[first],
        start[first],
        count,
        np.minimum.reduceat(v, first) if len(first) else v[:0],
        np.add.reduceat(v, first) if len(first) else v[:0],
        np.maximum.reduceat(v, first) if len(first) else v[:0],
    )


class HistoryStore:
    """Used from one thread (the recorder's writer thread, or a test's)."""

    def __init__(self, path: Path, raw: float, tiers: Sequence[Tier], max_bytes: int) -> None:
        self.path = path
        self.raw = raw
        self.tiers = tuple(tiers)
        self.max_bytes = max_bytes
        self.commits = 0
        """Transactions written: one per ``write``."""
        self.dropped_rows = 0
        """Rows dropped for the byte bound since open (the file keeps the total)."""
        self._db: sqlite3.Connection | None = None
        self._ids: dict[tuple[str, str], int] = {}
        self._units: dict[int, str | None] = {}

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the history store is not open")
        return self._db

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)
        self.path.chmod(0o640)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        db.executescript(SCHEMA)
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM tiers")
        db.executemany("INSERT INTO tiers VALUES (?, ?)", [(t.every, t.keep) for t in self.tiers])
        db.execute("DELETE FROM rollups WHERE every NOT IN (SELECT every FROM tiers)")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('raw', ?)", (self.raw,))
        db.execute("UPDATE meta SET value = ? WHERE key = 'raw'", (self.raw,))
        db.execute("COMMIT")
        for row in db.execute("SELECT id, source, name, unit FROM signals"):
            self._ids[(row[1], row[2])] = row[0]
            self._units[row[0]] = row[3]
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def used_bytes(self) -> int:
        db = self.db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size: int = db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _signal_ids(self, batch: Batch) -> list[int]:
        db = self.db
        ids = self._ids
        for key, unit in batch.units.items():
            signal = ids.get(key)
            if signal is None:
                cursor = db.execute(
                    "INSERT INTO signals (source, name, unit) VALUES (?, ?, ?)", (*key, unit)
                )
                signal = ids[key] = int(cursor.lastrowid or 0)
                self._units[signal] = unit
            elif self._units.get(signal) != unit:
                db.execute("UPDATE signals SET unit = ? WHERE id = ?", (unit, signal))
                self._units[signal] = unit
        return [ids[key] for key in batch.keys]

    def write(self, batch: Batch, now: float | None = None) -> None:
        """One transaction: values, buckets, markers, retention, bound."""
        now = time.time() if now is None else now
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            signal = np.asarray(self._signal_ids(batch), dtype=np.int64)
            t = np.asarray(batch.times, dtype=np.float64)
            v = np.asarray(batch.values, dtype=np.float64)
            if self.raw > 0 and len(t):
                keep = t >= now - self.raw
                db.executemany(
                    "INSERT OR REPLACE INTO samples VALUES (?, ?, ?)",
                    zip(signal[keep].tolist(), t[keep].tolist(), v[keep].tolist(), strict=True),
                )
            for tier in self.tiers:
                if len(t):
                    self._merge(tier, bucketize(signal, t, v, tier.every), now)
            if batch.markers:
                db.executemany(
                    "INSERT OR REPLACE INTO markers VALUES (?, ?, ?, ?, ?)", batch.markers
                )
            self._expire(now)
            self._bound(now)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.commits += 1

    def _merge(self, tier: Tier, buckets: Buckets, now: float) -> None:
        keep = buckets.start >= now - tier.keep
        rows = zip(
            buckets.signal[keep].tolist(),
            buckets.start[keep].tolist(),
            buckets.count[keep].tolist(),
            buckets.vmin[keep].tolist(),
            buckets.vsum[keep].tolist(),
            buckets.vmax[keep].tolist(),
            strict=True,
        )
        self.db.executemany(UPSERT_BUCKET, ((tier.every, *row) for row in rows))

    def _expire(self, now: float) -> None:
        # Per signal, so each delete is a range of the primary key, not a scan.
        db = self.db
        for signal in self._ids.values():
            db.execute("DELETE FROM samples WHERE signal = ? AND t < ?", (signal, now - self.raw))
            for tier in self.tiers:
                db.execute(
                    "DELETE FROM rollups WHERE every = ? AND signal = ? AND t < ?",
                    (tier.every, signal, now - tier.keep),
                )
        longest = max([self.raw, *(t.keep for t in self.tiers)])
        db.execute("DELETE FROM markers WHERE t < ?", (now - longest,))

    def _bound(self, now: float) -> None:
        if self.used_bytes() <= self.max_bytes:
            return
        db = self.db
        oldest = min(
            (
                row[0]
                for table in ("samples", "rollups", "markers")
                for row in db.execute(f"SELECT min(t) FROM {table}")  # noqa: S608 - our names
                if row[0] is not None
            ),
            default=now,
        )
        # Advance a cutoff from the oldest row until the contents fit under the low water.
        step = max(1.0, (now - oldest) / 64)
        cutoff = oldest
        dropped = 0
        while self.used_bytes() > self.max_bytes * LOW_WATER and cutoff < now:
            cutoff += step
            for table in ("samples", "rollups", "markers"):
                dropped += db.execute(f"DELETE FROM {table} WHERE t < ?", (cutoff,)).rowcount  # noqa: S608
        self.dropped_rows += dropped
        db.execute("INSERT OR IGNORE INTO meta VALUES ('dropped_rows', 0)")
        db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped_rows'", (dropped,))
