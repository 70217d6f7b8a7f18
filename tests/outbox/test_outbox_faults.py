"""Store-and-forward under faults: bounds, priorities, age, clock steps, corruption, full disks."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.outbox.fake_clock import FakeClock
from tidegate.clock import RELEASE_EPOCH
from tidegate.errors import BufferError_
from tidegate.event import new_event
from tidegate.outbox import DeadInput, OutboxFull, OutboxLimits, Row
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing
from tidegate.priority import HIGH, LOW, NORMAL


def item(source: str, value: float, priority: int = NORMAL, t: float | None = None) -> Outgoing:
    return Outgoing(new_event(source, "x", value, time=t), "t", 1, False, priority)


def values(rows: list[Row]) -> list[float]:
    return [json.loads(r.payload)["value"] for r in rows]


def make(tmp_path: Path, **limits: Any) -> Outbox:
    box = Outbox(tmp_path / "o.db", "gw", limits=OutboxLimits(**limits))
    box.open()
    return box


def test_higher_priority_is_taken_first_and_order_holds_within_a_class(tmp_path: Path) -> None:
    box = make(tmp_path)
    box.put([item("a", 1, LOW), item("a", 2, NORMAL), item("a", 3, HIGH), item("a", 4, NORMAL)])
    rows = box.take(10)
    assert values(rows) == [3, 2, 4, 1]
    assert [r.priority for r in rows] == [HIGH, NORMAL, NORMAL, LOW]
    assert box.stats.depth_by_priority == [1, 2, 1]


def test_drop_oldest_drops_the_lowest_class_first_and_counts(tmp_path: Path) -> None:
    box = make(tmp_path, max_bytes=20 * 1024)  # a tiny bound for the test
    box.put([item("s", i, LOW) for i in range(50)])
    box.put([item("s", 100 + i, HIGH) for i in range(50)])
    box.put([item("s", 200 + i, NORMAL) for i in range(60)])
    assert box.stats.bytes <= box.stats.max_bytes
    dropped = box.stats.drops["dropped_full"]
    assert dropped > 0
    rows = box.take(1000)
    kept = values(rows)
    # Low went first, oldest first; high priority events are all still there.
    assert [v for v in kept if 100 <= v < 150] == list(range(100, 150))
    lows = [v for v in kept if v < 50]
    assert lows == sorted(lows) and (not lows or lows[0] == 50 - len(lows))
    assert box.stats.depth + dropped == 160
    # The count survives a restart.
    box.close()
    again = make(tmp_path)
    assert again.stats.drops["dropped_full"] == dropped


def test_drop_newest_refuses_what_does_not_fit(tmp_path: Path) -> None:
    box = make(tmp_path, when_full="drop_newest", max_bytes=10 * 1024)
    stored = box.put([item("s", i) for i in range(200)])
    assert 0 < stored < 200
    assert box.stats.drops["dropped_newest"] == 200 - stored
    assert values(box.take(500)) == list(range(stored))
    # seq stays gapless among what was accepted
    assert [json.loads(r.payload)["seq"] for r in box.take(500)] == list(range(1, stored + 1))


def test_block_raises_and_keeps_nothing(tmp_path: Path) -> None:
    box = make(tmp_path, when_full="block", max_bytes=10 * 1024)
    box.put([item("s", i) for i in range(20)])
    with pytest.raises(OutboxFull):
        box.put([item("s", i) for i in range(200)])
    assert box.stats.depth == 20
    box.ack([r.id for r in box.take(20)])
    assert box.put([item("s", 99)]) == 1
    assert json.loads(box.take(1)[0].payload)["seq"] == 21  # the refused batch used no seq


def test_max_age_purges_only_old_events_and_only_on_a_trusted_clock(tmp_path: Path) -> None:
    clock = FakeClock(RELEASE_EPOCH + 1e6)
    box = Outbox(tmp_path / "o.db", "gw", limits=OutboxLimits(max_age=3600), clock=clock.watcher())
    box.open()
    box.put([item("s", 1)])
    old_row = box.take(1)[0]
    with sqlite3.connect(tmp_path / "o.db") as db:  # age it: accepted two hours ago
        db.execute(  # (its commit's segment: it alone)
            "UPDATE segments_normal SET accepted = accepted - 7200 WHERE id = ?", (old_row.id,)
        )
    box.put([item("s", 2)])
    now = time.time()
    assert box.purge_expired(now) == 1
    assert values(box.take(10)) == [2]
    assert box.stats.drops["dropped_expired"] == 1
    # An untrusted clock (earlier than the release) purges nothing at all.
    clock.wall_now = 0.0
    box.clock.check()
    assert not box.clock.trusted
    assert box.purge_expired(now + 10 * 86400) == 0


def test_unsynced_clock_marks_events_and_a_step_corrects_them(tmp_path: Path) -> None:
    clock = FakeClock(86400.0 * 365)  # 1971: a Pi that booted without network
    box = Outbox(tmp_path / "o.db", "gw", clock=clock.watcher())
    box.open()
    t0 = clock.wall_now
    box.put([item("s", 1, t=t0), item("s", 2, t=t0 + 0.5)])
    docs = [json.loads(r.payload) for r in box.take(10)]
    assert all(d["time_synced"] is False for d in docs)
    # NTP syncs: the wall clock steps to the true time; the monotonic clock does not.
    true_now = RELEASE_EPOCH + 5e6
    step = true_now - clock.wall_now
    clock.wall_now = true_now
    delta = box.clock.check()
    assert delta is not None and delta == pytest.approx(step)
    assert box.clock.trusted
    assert box.correct_clock(delta) == 2
    docs = [json.loads(r.payload) for r in box.take(10)]
    times = [datetime.fromisoformat(d["time"]).timestamp() for d in docs]
    assert times == pytest.approx([t0 + step, t0 + 0.5 + step], abs=1e-3)
    assert all(d["time_corrected"] is True and "time_synced" not in d for d in docs)
    # New events are accepted as synced.
    box.put([item("s", 3, t=clock.wall_now)])
    assert "time_synced" not in json.loads(box.take(10)[-1].payload)


def test_small_drift_is_not_a_step() -> None:
    clock = FakeClock(RELEASE_EPOCH + 100)
    watcher = clock.watcher()
    clock.advance(60)
    clock.wall_now += 0.5  # NTP slewing
    assert watcher.check() is None
    clock.wall_now -= 10
    assert watcher.check() == pytest.approx(-10)


def corrupt_random_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(100, len(data), 97):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["random_bytes", "not_a_database", "garbage_header"])
def test_a_corrupt_outbox_is_moved_aside_and_a_new_one_starts(tmp_path: Path, damage: str) -> None:
    box = make(tmp_path)
    box.put([item("s", i) for i in range(2000)])
    box.close()
    db = tmp_path / "o.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if damage == "random_bytes":
        corrupt_random_bytes(db)
    elif damage == "not_a_database":
        db.write_text("this is a text file, not SQLite\n" * 100)
    else:
        data = bytearray(db.read_bytes())
        data[:16] = b"GARBAGE-GARBAGE!"
        db.write_bytes(bytes(data))
    again = make(tmp_path)  # never raises, never crash-loops
    assert again.stats.moved_aside is not None
    aside = Path(again.stats.moved_aside)
    assert aside.exists() and aside.name.startswith("o.db.corrupt-")
    assert again.stats.depth == 0
    assert again.stats.drops["corrupt_recoveries"] == 1
    assert again.put([item("s", 1)]) == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_wal_cut_mid_frame_keeps_everything_before_it(tmp_path: Path) -> None:
    box = make(tmp_path)
    box.put([item("s", i) for i in range(100)])  # commit 1
    box.put([item("s", 100 + i) for i in range(100)])  # commit 2
    # Simulate power loss: copy the files as they are, without a checkpoint.
    wal = Path(f"{tmp_path / 'o.db'}-wal")
    crash = tmp_path / "crash"
    crash.mkdir()
    (crash / "o.db").write_bytes((tmp_path / "o.db").read_bytes())
    data = wal.read_bytes()
    box.close()
    (crash / "o.db-wal").write_bytes(data[: len(data) - 1000])  # torn last frame
    again = Outbox(crash / "o.db", "gw")
    again.open()
    assert again.stats.moved_aside is None
    kept = values(again.take(1000))
    assert kept[:100] == list(range(100))  # the first commit is whole
    assert kept == list(range(len(kept)))  # a prefix: nothing out of order or half-written


def test_disk_full_is_an_error_that_loses_nothing_and_recovers(tmp_path: Path) -> None:
    box = make(tmp_path)
    box.put([item("s", 0)])
    pages = box.db.execute("PRAGMA page_count").fetchone()[0]
    box.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk is nearly full
    with pytest.raises(BufferError_, match="full"):
        box.put([item("s", i) for i in range(1, 5000)])
    assert box.stats.depth == 1
    assert values(box.take(10)) == [0]
    box.db.execute("PRAGMA max_page_count = 1000000")  # space returns
    assert box.put([item("s", i) for i in range(1, 5000)]) == 4999
    seqs = [json.loads(r.payload)["seq"] for r in box.take(10000)]
    assert seqs == list(range(1, 5000 + 1))


def test_dead_letters_are_bounded(tmp_path: Path) -> None:
    box = make(tmp_path, dead_letter_max_bytes=65536)
    for _ in range(20):
        box.dead_letter_input([DeadInput(0.0, "input", "garbage", "s", os.urandom(1000))] * 10)
    assert box.stats.dead_letter_bytes <= 65536
    assert box.stats.drops["dead_letters_evicted"] > 0
    (n,) = box.db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
    assert n == box.stats.dead_letters


def test_a_layout_no_tidegate_wrote_is_moved_aside_not_misread(tmp_path: Path) -> None:
    # (Older tidegate schemas are upgraded in place: tests/test_outbox_integrity.py.)
    with sqlite3.connect(tmp_path / "o.db") as db:
        db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, payload BLOB)")
    box = make(tmp_path)
    assert box.stats.moved_aside is not None


def test_a_mixed_batch_never_evicts_older_higher_events_for_newer_lower_ones(
    tmp_path: Path,
) -> None:
    box = make(tmp_path, max_bytes=40_000)
    box.put([item("n", i, NORMAL) for i in range(200)])
    before = box.stats.depth_by_priority[NORMAL]
    box.put([item("a", 1, HIGH)] + [item("l", i, LOW) for i in range(100)])
    assert box.stats.depth_by_priority[NORMAL] == before  # no normal event gave way
    assert box.stats.depth_by_priority[HIGH] == 1
    assert box.stats.bytes <= box.stats.max_bytes
    stored_low = box.stats.depth_by_priority[LOW]
    assert box.stats.drops["dropped_full"] == 100 - stored_low
    lows = [json.loads(r.payload)["value"] for r in box.take(1000) if r.priority == LOW]
    assert lows == list(range(stored_low))  # the oldest of the batch stay, the newest went


def test_untrusted_times_from_an_earlier_boot_are_never_aged_out(tmp_path: Path) -> None:
    clock = FakeClock(86400.0 * 365)  # boot 1: no RTC, no NTP
    box = Outbox(tmp_path / "o.db", "gw", limits=OutboxLimits(max_age=3600), clock=clock.watcher())
    box.open()
    box.put([item("s", i) for i in range(50)])
    box.close()
    with sqlite3.connect(tmp_path / "o.db") as db:  # what boot 1 looks like from boot 2
        db.execute("UPDATE boots SET boot = 'an-earlier-boot'")
    trusted = Outbox(tmp_path / "o.db", "gw", limits=OutboxLimits(max_age=3600))
    trusted.open()
    assert trusted.clock.trusted
    assert trusted.purge_expired(time.time()) == 0
    assert trusted.stats.depth == 50


def test_drop_counts_of_a_failed_commit_are_not_reported(tmp_path: Path) -> None:
    box = make(tmp_path, max_bytes=20_000)
    box.put([item("s", i) for i in range(100)])
    # A write that fails after the drops were made (as a full disk or an I/O error would).
    box.db.execute(
        "CREATE TRIGGER fail BEFORE INSERT ON segments_low BEGIN SELECT RAISE(ABORT, 'fails'); END"
    )
    with pytest.raises(BufferError_):
        box.put([item("s", i, LOW) for i in range(100, 200)])
    assert box.stats.depth == 100
    on_disk = dict(box.db.execute("SELECT name, value FROM counters").fetchall())
    assert box.stats.drops.get("dropped_full", 0) == on_disk.get("dropped_full", 0)


def test_a_locked_outbox_is_refused_not_moved_aside(tmp_path: Path) -> None:
    box = make(tmp_path)
    box.put([item("s", i) for i in range(10)])
    box.close()
    lock = sqlite3.connect(tmp_path / "o.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        other = Outbox(tmp_path / "o.db", "gw")
        with pytest.raises(BufferError_, match="locked"):
            other.open()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert not list(tmp_path.glob("o.db.corrupt-*"))
    again = make(tmp_path)
    assert again.stats.depth == 10
