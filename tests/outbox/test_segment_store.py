"""The outbox stores each commit's events of a class as one segment
(``tidegate.outbox.segment_store``): what that changes must not show. Segments are
delivered by prefix and deleted whole; an event handled on its own (acknowledged out
of order, dead-lettered) is unpacked into a row first; a damaged segment goes to the
dead letters whole, counted, and delivery goes on."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest

from tests.outbox.fake_clock import FakeClock
from tests.outbox.stored import stored_events
from tidegate.clock import RELEASE_EPOCH
from tidegate.event import new_event
from tidegate.outbox import OutboxLimits, segment_store
from tidegate.outbox.integrity import DAMAGED
from tidegate.outbox.segment import encode
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing
from tidegate.priority import HIGH, LOW, NORMAL


def item(source: str, value: float, priority: int = NORMAL) -> Outgoing:
    return Outgoing(new_event(source, "x", value), f"t/{source}", 1, False, priority)


def values(rows: list[tuple[int, int, bytes]] | list[bytes]) -> list[float]:
    payloads = [r if isinstance(r, bytes) else r[2] for r in rows]
    return [json.loads(p)["value"] for p in payloads]


def segments(db: sqlite3.Connection, table: str = "segments_normal") -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in db.execute(f"SELECT id, last_id FROM {table}")]  # noqa: S608


def rows(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def reopened(box: Outbox) -> Outbox:
    box.close()
    again = Outbox(box.path, "gw")
    again.open()
    return again


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    b = Outbox(tmp_path / "o.db", "gw")
    b.open()
    return b


def test_a_commit_is_one_segment_per_class_with_contiguous_ids(box: Outbox) -> None:
    box.put([item("a", 1, LOW), item("a", 2, HIGH), item("b", 3), item("a", 4, HIGH)])
    assert segments(box.db, "segments_high") == [(1, 2)]
    assert segments(box.db, "segments_normal") == [(3, 3)]
    assert segments(box.db, "segments_low") == [(4, 4)]
    assert rows(box.db) == 0
    taken = box.take(10)
    assert [(r.id, r.priority) for r in taken] == [(1, HIGH), (2, HIGH), (3, NORMAL), (4, LOW)]
    # seq follows the order events came in, whatever their class.
    assert [json.loads(r.payload)["seq"] for r in taken] == [2, 3, 1, 1]
    again = reopened(box)  # read back from the file, not from memory
    assert [r.payload for r in again.take(10)] == [r.payload for r in taken]
    again.close()


def test_a_delivered_prefix_is_kept_across_a_restart_and_the_rest_comes_once(
    box: Outbox,
) -> None:
    box.put([item("a", v) for v in range(10)])
    taken = box.take(10)
    assert box.ack([r.id for r in taken[:4]]) == 4
    assert segments(box.db) == [(1, 10)]  # the segment stays, its position moved
    assert box.db.execute("SELECT id, upto FROM segment_positions").fetchall() == [(1, 4)]
    depth, size = box.stats.depth, box.stats.bytes
    again = reopened(box)
    assert (again.stats.depth, again.stats.bytes) == (depth, size) == (6, size)
    assert values([r.payload for r in again.take(10)]) == list(range(4, 10))
    assert again.ack(range(5, 11)) == 6
    assert segments(again.db) == [] and again.stats.depth == 0 and again.stats.bytes == 0
    assert again.db.execute("SELECT COUNT(*) FROM segment_positions").fetchone()[0] == 0
    again.close()


def test_an_ack_out_of_order_unpacks_the_segment_and_loses_nothing(box: Outbox) -> None:
    box.put([item("a", v) for v in range(10)])
    taken = box.take(10)
    assert box.ack([taken[5].id, taken[7].id]) == 2
    assert segments(box.db) == [] and rows(box.db) == 8
    assert values(stored_events(box.db)) == [0, 1, 2, 3, 4, 6, 8, 9]
    assert box.stats.depth == 8
    again = reopened(box)
    assert values([r.payload for r in again.take(10)]) == [0, 1, 2, 3, 4, 6, 8, 9]
    assert again.stats.depth == 8
    again.close()


def test_a_rejected_event_goes_alone_and_its_neighbours_stay(box: Outbox) -> None:
    box.put([item("a", v) for v in range(5)])
    taken = box.take(5)
    assert box.reject([taken[2].id], "refused by the broker") == 1
    (letter,) = box.db.execute("SELECT reason, payload FROM dead_letters").fetchall()
    assert letter == ("refused by the broker", taken[2].payload)
    assert values(stored_events(box.db)) == [0, 1, 3, 4]
    assert box.stats.depth == 4


def test_a_damaged_segment_goes_to_the_dead_letters_whole_and_delivery_goes_on(
    box: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    box.put([item("a", v) for v in range(3)])
    box.put([item("a", v) for v in range(3, 8)])
    box.put([item("a", v) for v in range(8, 10)])
    (body,) = box.db.execute("SELECT body FROM segments_normal WHERE id = 4").fetchone()
    damaged = bytearray(body)
    damaged[len(damaged) // 2] ^= 0x40  # one flipped bit, as a bad sector leaves it
    box.db.execute("UPDATE segments_normal SET body = ? WHERE id = 4", (bytes(damaged),))
    again = reopened(box)  # read from the file
    assert values([r.payload for r in again.take(20)]) == [0, 1, 2, 8, 9]
    assert again.stats.drops[DAMAGED] == 5
    assert again.stats.depth == 5
    ((reason, payload, topic),) = again.db.execute(
        "SELECT reason, payload, topic FROM dead_letters"
    ).fetchall()
    assert reason.startswith("segment checksum mismatch") and reason.endswith("events 4-8")
    assert payload == bytes(damaged) and topic is None  # kept as found; not replayable
    assert "a stored segment of 5 events failed a check" in caplog.text
    again.close()


def test_a_full_outbox_drops_the_oldest_events_one_by_one_not_whole_segments(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.db", "gw")
    box.open()
    box.put([item("a", v) for v in range(50)])
    full = box.stats.bytes
    box.close()
    box = Outbox(tmp_path / "o.db", "gw", limits=OutboxLimits(max_bytes=full + 100))
    box.open()
    box.put([item("a", 100)])
    dropped = box.stats.drops["dropped_full"]
    # Room for one event: the oldest segment's prefix goes, not its 50 events.
    assert 1 <= dropped <= 2
    assert box.db.execute("SELECT upto FROM segment_positions").fetchall() == [(dropped,)]
    assert values(stored_events(box.db)) == [*range(dropped, 50), 100]
    assert box.stats.depth == 51 - dropped
    box.close()


def test_rows_between_segments_come_out_in_id_order(box: Outbox) -> None:
    for start in (0, 5, 10):
        box.put([item("a", v) for v in range(start, start + 5)])
    taken = box.take(15)
    box.reject([taken[7].id], "refused by the broker")  # the middle segment becomes rows
    assert segments(box.db) == [(1, 5), (11, 15)] and rows(box.db) == 4
    again = reopened(box)  # read back from the file, a few at a time, merged
    cursors = [0, 0, 0]
    got: list[float] = []
    while batch := again.take(3, cursors):
        cursors[NORMAL] = batch[-1].id
        got += values([r.payload for r in batch])
    assert got == [v for v in range(15) if v != 7]
    again.close()


ROW_DAMAGE = {
    "last_id text, not UTF-8": "UPDATE segments_normal SET last_id = CAST(X'ff08' AS TEXT)",
    "last_id real": "UPDATE segments_normal SET last_id = 8.5",
    "last_id too high": "UPDATE segments_normal SET last_id = 1000",
    "last_id too low": "UPDATE segments_normal SET last_id = 2",
    "size text": "UPDATE segments_normal SET size = CAST(X'ff08' AS TEXT)",
    "position real": "INSERT INTO segment_positions VALUES (4, 1, 5.5)",
}


@pytest.mark.parametrize("how", list(ROW_DAMAGE))
def test_a_damaged_value_in_a_segments_row_never_stops_the_outbox(tmp_path: Path, how: str) -> None:
    # A flipped byte in a record's header changes what SQLite reads a value as: the
    # segment's own checks (its event count) catch what the values do not.
    box = Outbox(tmp_path / "o.db", "gw")
    box.open()
    box.put([item("a", v) for v in range(3)])
    box.put([item("a", v) for v in range(3, 8)])
    box.put([item("a", v) for v in range(8, 10)])
    box.close()
    db = sqlite3.connect(tmp_path / "o.db")
    db.execute(ROW_DAMAGE[how] + (" WHERE id = 4" if how.startswith(("last", "size")) else ""))
    db.commit()
    db.close()
    again = Outbox(tmp_path / "o.db", "gw")
    again.open()
    got = values([r.payload for r in again.take(100)])
    if how in {"size text", "position real"}:  # the events themselves are sound
        assert got == list(range(10))
        assert again.stats.drops.get(DAMAGED, 0) == 0
    else:
        assert got == [0, 1, 2, 8, 9]
        assert again.stats.drops[DAMAGED] == 5  # as many as it held, whatever the row said
        assert again.stats.depth == 5
    again.ack(range(1, 11))
    assert again.stats.depth == 0
    again.close()
    last = Outbox(tmp_path / "o.db", "gw")
    last.open()
    assert last.stats.depth == 0 and last.stats.recovery is None
    last.close()


def test_a_clock_step_rewrites_segments_in_place_and_keeps_damage_damaged(
    tmp_path: Path,
) -> None:
    clock = FakeClock(86400.0 * 365)  # 1971: a Pi that booted without network
    box = Outbox(tmp_path / "o.db", "gw", clock=clock.watcher())
    box.open()
    box.put([item("a", v) for v in range(5)])
    taken = box.take(5)
    box.ack([taken[0].id])  # a delivered prefix: left as it was sent
    # One stored payload damaged (its CRC kept): a rewrite must not make it look sound.
    decoded = segment_store.read(box.db, NORMAL, 1)
    bad = decoded.payload(3).replace(b'"value":3', b'"value":9')
    payloads = [decoded.payload(i) for i in range(5)]
    payloads[3] = bad
    box.db.execute(
        "UPDATE segments_normal SET body = ? WHERE id = 1",
        (encode(payloads, decoded.routes, decoded.sources, crcs=decoded.crcs),),
    )
    clock.wall_now = RELEASE_EPOCH + 5e6  # NTP syncs: the wall clock steps
    delta = box.clock.check()
    assert delta is not None
    assert box.correct_clock(delta) == 3  # values 1, 2, 4: not the damaged one
    assert segments(box.db) == [(1, 5)] and rows(box.db) == 0  # still one segment
    again = reopened(box)
    out = again.take(10)
    assert values([r.payload for r in out]) == [1, 2, 4]
    assert all(json.loads(r.payload)["time_corrected"] is True for r in out)
    assert again.stats.drops[DAMAGED] == 1 and again.stats.depth == 3
    again.close()


@pytest.mark.parametrize("seed", range(8))
def test_drops_from_a_full_outbox_are_exactly_the_events_gone(tmp_path: Path, seed: int) -> None:
    # Random commits into a small bound: drops take whole segments, a segment's oldest
    # events, or (when only its last event makes room) all of it. (Seed 4 once left a
    # segment whose every event was dropped, its events then read back as stored.)
    rnd = random.Random(seed)
    box = Outbox(tmp_path / "o.db", "gw", limits=OutboxLimits(max_bytes=24 * 1024))
    box.open()
    accepted: set[str] = set()
    value = 0
    for _ in range(12):
        items = []
        for _ in range(rnd.randint(1, 40)):
            value += 1
            pad = "p" * rnd.choice([0, 200, rnd.randint(0, 200)])
            items.append(Outgoing(new_event("a", "x", value, tags={"pad": pad}), "t/a", 1, False))
        box.put(items)
        accepted |= {o.event.id for o in items}
        stored = {json.loads(p)["id"] for _, _, p in stored_events(box.db)}
        assert stored <= accepted
        assert len(accepted - stored) == box.stats.drops.get("dropped_full", 0)
        assert box.stats.depth == len(stored)
    box.close()
