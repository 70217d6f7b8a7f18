"""``tidegate buffer stats``: what an outbox file holds (rows and segments), from one
snapshot of it, with what its ledger says beside it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from tidegate.outbox.admin.access import COUNTER_SQL, scalar, snapshot
from tidegate.outbox.admin.listing import Packed, packed
from tidegate.outbox.admin.uplinks import uplink_depths
from tidegate.outbox.ledger.file import ledger_path, read_ledger
from tidegate.outbox.schema import CLASS_TABLES, INTERNAL_COUNTERS, MEMORY_APPLIED
from tidegate.outbox.segment import SegmentDamaged
from tidegate.priority import PRIORITIES


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
    by_uplink: dict[str, int] = dataclass_field(default_factory=dict)
    """Several uplinks: per uplink, the events it still has to send."""

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
            "by_uplink": self.by_uplink,
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


Group = tuple[int | None, int, int, float | None, int]
"""(source id, events, payload bytes, oldest accepted, unsynced events)."""


def _segment_groups(db: Database, priority: int) -> list[Group]:
    """The class's segments' undelivered events, grouped per source as the rows are (the
    damaged segments: one group of source None, counted whole, as the gateway counts
    them)."""
    groups: dict[int | None, list[Any]] = {}

    def add(source: int | None, n: int, size: int, seg: Packed) -> None:
        group = groups.setdefault(source, [0, 0, None, 0])
        group[0] += n
        group[1] += size
        if seg.accepted is not None:
            group[2] = seg.accepted if group[2] is None else min(group[2], seg.accepted)
        if not seg.synced:
            group[3] += n

    for seg in packed(db, priority):
        stored = seg.stored
        try:
            decoded = seg.decode()
        except SegmentDamaged:
            add(None, stored.events, stored.size, seg)
            continue
        ends, sources = decoded.ends, decoded.sources
        counts: dict[int, list[int]] = {}
        for i in range(stored.first - stored.id, len(decoded)):
            count = counts.setdefault(sources[i], [0, 0])
            count[0] += 1
            count[1] += ends[i] - (ends[i - 1] if i else 0)
        for source, (n, size) in counts.items():
            add(source, n, size, seg)
    return [(source, n, size, first, late) for source, (n, size, first, late) in groups.items()]


def read_stats(db: Database, path: Path, top: int = 10) -> BufferStats:
    """Everything ``buffer stats`` shows, from one snapshot of the file."""
    with snapshot(db):
        by_priority: dict[str, ClassStats] = {}
        per_source: dict[int, list[Any]] = {}
        oldest: float | None = None
        unsynced = 0
        for priority, (name, table) in enumerate(zip(PRIORITIES, CLASS_TABLES, strict=True)):
            depth = payload = 0
            rows = db.execute(
                "SELECT source_id, COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), "  # noqa: S608 - constant names
                f"MIN(accepted), SUM(synced = 0) FROM {table} GROUP BY source_id"
            ).fetchall()
            for source_id, n, size, first, late in [*rows, *_segment_groups(db, priority)]:
                depth += n
                payload += size
                unsynced += late
                if first is not None:
                    oldest = first if oldest is None else min(oldest, first)
                if source_id is None:  # a damaged segment: its sources are unknown
                    continue
                entry = per_source.setdefault(source_id, [0, 0, first])
                entry[0] += n
                entry[1] += size
                if first is not None:
                    entry[2] = first if entry[2] is None else min(entry[2], first)
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
        by_uplink = uplink_depths(db)
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
        by_uplink=by_uplink,
    )
