"""`tidegate buffer` sees the events a commit stored as segments (schema 4) exactly as
it sees rows: a partly acknowledged segment shows its undelivered events only, a
segment unpacked into rows shows as rows, and peek/export, stats and purge agree
with what the gateway itself would publish."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.outbox.support import item, old_outbox
from tidegate.event import new_event
from tidegate.outbox.admin.inspect import (
    Entry,
    entries,
    open_for_reading,
    open_for_writing,
    read_stats,
    snapshot,
)
from tidegate.outbox.admin.note import note_admin_change
from tidegate.outbox.admin.purge import count_for_purge, purge
from tidegate.outbox.delivery import Row
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing
from tidegate.priority import PRIORITIES


def filled(path: Path) -> list[Row]:
    """An outbox (closed again) with segments in all three classes, one of them partly
    acknowledged, and one segment unpacked into rows by an acknowledgement out of order.
    Returns its undelivered events as the gateway would publish them, in id order."""
    box = Outbox(path, "gw")
    box.open()
    box.put([item("alpha", i) for i in range(6)])
    box.put(
        [item("alpha", 10 + i) for i in range(4)]
        + [Outgoing(new_event("beta", "hi", i), "t/high", 0, True, 0) for i in range(3)]
        + [Outgoing(new_event("beta", "lo", i), "t/low", 1, False, 2) for i in range(2)]
    )
    normal = [r.id for r in box.take(100) if r.priority == 1]
    box.ack(normal[:2])  # a prefix of the first segment: a position
    box.ack([normal[7]])  # the middle of the second: it becomes rows
    undelivered = sorted(box.take(100), key=lambda r: r.id)
    assert box.stats.depth == len(undelivered) == 12
    box.close()
    with sqlite3.connect(path) as db:
        (packed,) = db.execute("SELECT COUNT(*) FROM segments").fetchone()
        (rows,) = db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        (positions,) = db.execute("SELECT COUNT(*) FROM segment_positions").fetchone()
    assert (packed, rows, positions) == (3, 3, 1)  # what this test is about
    return undelivered


def listed(path: Path, source_glob: str | None = None, limit: int | None = None) -> list[Entry]:
    db = open_for_reading(path)
    try:
        with snapshot(db):
            return list(entries(db, source_glob=source_glob, limit=limit))
    finally:
        db.close()


def test_entries_list_the_undelivered_events_of_segments_and_rows_in_id_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    expected = filled(path)
    got = listed(path)
    assert [e.id for e in got] == [r.id for r in expected]
    assert [e.payload for e in got] == [r.payload for r in expected]
    assert [e.priority for e in got] == [PRIORITIES[r.priority] for r in expected]
    assert [(e.topic, e.qos, e.retain) for e in got] == [
        (r.topic, r.qos, r.retain) for r in expected
    ]
    assert [e.source for e in got] == [json.loads(r.payload)["source"] for r in expected]
    assert all(e.accepted is not None and e.synced for e in got)

    beta = listed(path, source_glob="b*")
    assert [e.id for e in beta] == [
        r.id for r in expected if json.loads(r.payload)["source"] == "beta"
    ]
    assert len(beta) == 5
    assert [e.id for e in listed(path, limit=4)] == [r.id for r in expected[:4]]
    assert [e.id for e in listed(path, source_glob="alpha", limit=5)] == [
        r.id for r in expected if json.loads(r.payload)["source"] == "alpha"
    ][:5]


def test_stats_count_the_undelivered_events_of_segments(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    expected = filled(path)
    db = open_for_reading(path)
    try:
        stats = read_stats(db, path)
    finally:
        db.close()
    assert stats.depth == len(expected)
    assert stats.payload_bytes == sum(len(r.payload) for r in expected)
    for priority, name in enumerate(PRIORITIES):
        mine = [r for r in expected if r.priority == priority]
        assert stats.by_priority[name].depth == len(mine)
        assert stats.by_priority[name].payload_bytes == sum(len(r.payload) for r in mine)
    by_source = {s.source: s for s in stats.by_source}
    for source in ("alpha", "beta"):
        mine = [r for r in expected if json.loads(r.payload)["source"] == source]
        assert by_source[source].depth == len(mine)
        assert by_source[source].payload_bytes == sum(len(r.payload) for r in mine)
        assert by_source[source].oldest is not None
    assert stats.oldest is not None and stats.unsynced == 0


def test_purge_removes_segments_and_their_positions_counted_as_undelivered_events(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    expected = filled(path)
    db = open_for_writing(path)
    try:
        assert count_for_purge(db, outbox=True, dead=False).outbox == len(expected)
        assert purge(db, outbox=True, dead=False).outbox == len(expected)
        assert note_admin_change(path, db.conn) == "updated"
        left = [
            db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608 - constant names
            for t in ("segments", "outbox", "segment_positions")
        ]
        purged = db.execute("SELECT value FROM counters WHERE name = 'purged_outbox'").fetchone()
    finally:
        db.close()
    assert left == [0, 0, 0]
    assert purged == (len(expected),)
    assert listed(path) == []
    box = Outbox(path, "gw")
    box.open()
    try:
        assert box.stats.depth == 0
        assert box.take(100) == []
        assert box.stats.drops.get("purged_outbox") == len(expected)
        assert box.stats.lost_in_recovery == 0
    finally:
        box.close()


def test_a_damaged_segment_is_listed_as_one_entry_and_counted_whole(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    expected = filled(path)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE segments_low SET body = X'00010203'")
    low = [r for r in expected if r.priority == 2]
    got = listed(path)
    damaged = [e for e in got if e.priority == "low"]
    assert [(e.id, e.source, e.topic, e.payload) for e in damaged] == [
        (low[0].id, None, None, b"\x00\x01\x02\x03")
    ]
    assert [e.id for e in got if e.priority != "low"] == [r.id for r in expected if r.priority != 2]
    assert all(e.priority != "low" for e in listed(path, source_glob="*"))
    db = open_for_reading(path)
    try:
        stats = read_stats(db, path)
    finally:
        db.close()
    assert stats.by_priority["low"].depth == len(low)
    assert stats.depth == len(expected)
    assert sum(s.depth for s in stats.by_source) == len(expected) - len(low)


def test_schema_2_and_3_files_without_segment_tables_are_read(tmp_path: Path) -> None:
    for version in (2, 3):
        path = tmp_path / f"v{version}.db"
        payloads = old_outbox(path, 2, 3)
        if version == 3:
            with sqlite3.connect(path) as raw:
                for cls in PRIORITIES:
                    raw.execute(f"ALTER TABLE outbox_{cls} ADD COLUMN crc INTEGER")
                raw.execute("PRAGMA user_version = 3")
        assert sorted(e.payload for e in listed(path)) == sorted(payloads)
        db = open_for_reading(path)
        try:
            assert read_stats(db, path).depth == len(payloads)
            assert count_for_purge(db, outbox=True, dead=False).outbox == len(payloads)
        finally:
            db.close()
