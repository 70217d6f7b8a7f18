"""What SQLite costs per event: the outbox against the floor of its segment layout.

The outbox stores what a commit accepted as one row per priority class (a segment:
``tidegate.outbox.segment``, ``tidegate.outbox.segment_store``). This measures the
real store against that layout's floor on the same connection settings
(``tidegate.outbox.migrate.configure``: 1 KiB pages, WAL, ``secure_delete=FAST``),
in the same cycle a running gateway makes: commit N events, take them,
acknowledge them, again and again. (Before segments, the store's column was a row
per event: 580 B and 14-16 µs per event at 50-event commits, 3.4x the payload.)

- outbox: the real ``Outbox`` (``put`` / ``take`` / ``ack``): everything it does;
- floor: only the SQL a segment store needs: per commit one segment
  insert plus the per-source ``seq`` and counter updates a commit makes today;
  per take one read and decode (every payload checked against its CRC); per ack
  one delete and one update of the uplink's delivery position.

Both encode the same events to JSON (``tidegate.payload.encode_event``) in the
cycle. Reported per event: CPU µs of the process and bytes written to storage
(``/proc/self/io`` write_bytes: the WAL, and the checkpoints that copy it into the
database file), as a multiple of the JSON payload. The floor is not a store: no
ledger, no fresh cache, no bounds; the outbox's excess over it is what those cost.

Run: ``./dev bench segment_floor [--events N] [--dir PATH]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.outbox_durability import io_write_bytes, make_events
from tidegate.outbox import segment
from tidegate.outbox.migrate import configure
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing
from tidegate.payload import encode_event

PER_COMMIT = (20, 50, 100, 1000)
"""Events per commit: 50 is the default 50 ms commits at 1,000 events/s."""

SEGMENTS = """
CREATE TABLE IF NOT EXISTS floor_segments (
    id INTEGER PRIMARY KEY,
    last_id INTEGER NOT NULL,
    accepted REAL NOT NULL,
    synced INTEGER NOT NULL,
    boot_id INTEGER NOT NULL,
    events BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    uplink TEXT NOT NULL,
    class INTEGER NOT NULL,
    delivered INTEGER NOT NULL,
    PRIMARY KEY (uplink, class)
) WITHOUT ROWID;
"""


def _rows(path: Path, events: list[Outgoing], per_commit: int) -> None:
    box = Outbox(path, "bench")
    box.open()
    cursors = [0, 0, 0]
    for start in range(0, len(events), per_commit):
        box.put(events[start : start + per_commit])
        rows = box.take(per_commit, cursors)
        cursors[rows[-1].priority] = rows[-1].id
        box.ack([r.id for r in rows])
    box.close()


def _segments(path: Path, events: list[Outgoing], per_commit: int) -> None:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    configure(db, path, durability="batch")
    db.executescript(SEGMENTS)
    sources = {s: n for n, s in enumerate(sorted({o.event.source for o in events}), 1)}
    db.executemany(
        "INSERT OR IGNORE INTO sources (id, source, last_seq) VALUES (?, ?, 0)",
        [(n, s) for s, n in sources.items()],
    )
    db.execute("INSERT OR IGNORE INTO routes (id, topic, qos, retain) VALUES (1, 't', 1, 0)")
    seqs = dict.fromkeys(sources, 0)
    next_id = 1
    for start in range(0, len(events), per_commit):
        batch = events[start : start + per_commit]
        payloads = []
        for o in batch:
            seqs[o.event.source] += 1
            payloads.append(encode_event(o.event, seqs[o.event.source], "bench", synced=True))
        blob = segment.encode(payloads, [1] * len(batch), [sources[o.event.source] for o in batch])
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO floor_segments VALUES (?, ?, ?, 1, 1, ?)",
            (next_id, next_id + len(batch) - 1, time.time(), blob),
        )
        db.executemany(
            "UPDATE sources SET last_seq = ? WHERE id = ?",
            [(seqs[s], n) for s, n in sources.items()],
        )
        db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [("next_id", next_id + len(batch)), ("accepted_total", next_id + len(batch) - 1)],
        )
        db.execute("COMMIT")
        (stored,) = db.execute(
            "SELECT events FROM floor_segments WHERE id = ?", (next_id,)
        ).fetchone()
        decoded = segment.decode(stored)
        taken = [decoded.payload(i) for i in range(len(decoded)) if decoded.intact(i)]
        assert len(taken) == len(batch)
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM floor_segments WHERE id = ?", (next_id,))
        db.execute(
            "INSERT INTO positions VALUES ('main', 1, ?) "
            "ON CONFLICT(uplink, class) DO UPDATE SET delivered = excluded.delivered",
            (next_id + len(batch) - 1,),
        )
        db.execute("COMMIT")
        next_id += len(batch)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def _measure(
    layout: Callable[[Path, list[Outgoing], int], None],
    directory: Path,
    events: list[Outgoing],
    per_commit: int,
) -> tuple[float, float]:
    """(CPU µs, bytes written) per event."""
    with tempfile.TemporaryDirectory(prefix="tidegate-segment-", dir=directory) as tmp:
        io0, cpu0 = io_write_bytes(), time.process_time()
        layout(Path(tmp) / "outbox.db", events, per_commit)
        cpu, written = time.process_time() - cpu0, io_write_bytes() - io0
    return cpu / len(events) * 1e6, written / len(events)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench segment_floor")
    parser.add_argument("--events", type=int, default=50_000, help="events per measurement")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where files live")
    args = parser.parse_args(argv)
    events = make_events(args.events)
    payload = sum(len(encode_event(o.event, 1, "bench")) for o in events[:1000]) / 1000
    print(
        f"SQLite per event, commit -> take -> ack cycles of N events ({args.events:,} events, "
        f"JSON payload ≈{payload:.0f} B, files in {args.dir})"
    )
    print(
        "{:>9} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10}".format(
            "ev/commit", "outbox µs", "floor µs", "outbox B", "floor B", "outbox x", "floor x"
        )
    )
    for n in PER_COMMIT:
        total = len(events) - len(events) % n
        rows_cpu, rows_bytes = _measure(_rows, args.dir, events[:total], n)
        seg_cpu, seg_bytes = _measure(_segments, args.dir, events[:total], n)
        print(
            f"{n:>9} {rows_cpu:>12.1f} {seg_cpu:>12.1f} {rows_bytes:>12,.0f} {seg_bytes:>12,.0f} "
            f"{rows_bytes / payload:>9.1f}x {seg_bytes / payload:>9.1f}x"
        )
    print()
    print(
        "issue 12's disk goal: ≤ 1.5x the payload at the default commits (50 events at "
        "1,000 events/s); floor: the SQL the layout needs, nothing else"
    )
