"""Rows this run committed are handed out from memory (``tidegate.outbox.fresh``):
always exactly as the file holds them, once per connection, and never after they
went from the file otherwise than by an ack."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.outbox.stored import stored_events, unpack_segments
from tests.outbox.support import item
from tidegate.event import new_event
from tidegate.outbox import Row
from tidegate.outbox.limits import OutboxLimits
from tidegate.outbox.store import Outbox
from tidegate.payload import encode_event


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path / "o.db", "gw")
    outbox.open()
    yield outbox
    outbox.close()


class Publisher:
    """Takes as the real one does: a cursor per class, reset by a reconnect."""

    def __init__(self, box: Outbox) -> None:
        self.box = box
        self.cursors = [0, 0, 0]

    def take(self, limit: int = 1000) -> list[Row]:
        rows = self.box.take(limit, self.cursors)
        for row in rows:
            self.cursors[row.priority] = row.id
        return rows

    def reconnect(self) -> None:
        self.cursors = [0, 0, 0]


def stored(box: Outbox) -> dict[int, bytes]:
    return {i: p for i, _, p in stored_events(box.db)}


def values(rows: list[Row]) -> list[object]:
    return [json.loads(r.payload)["value"] for r in rows]


def test_what_this_run_committed_is_handed_out_once_as_stored(box: Outbox) -> None:
    publisher = Publisher(box)
    box.put([item("a", v) for v in range(5)])
    rows = publisher.take()
    assert values(rows) == [0, 1, 2, 3, 4]
    assert {r.id: r.payload for r in rows} == stored(box)
    assert publisher.take() == []  # nothing twice on one connection
    box.put([item("a", 5)])
    assert values(publisher.take()) == [5]


def test_a_clock_correction_rewrites_what_memory_kept(box: Outbox) -> None:
    publisher = Publisher(box)
    box.put([item("a", 1)])
    publisher.take()
    box.put([item("a", 2), item("a", 3)])
    assert box.correct_clock(30.0) == 3
    rows = publisher.take()
    assert values(rows) == [2, 3]
    assert all(json.loads(r.payload)["time_corrected"] is True for r in rows)
    assert {r.id: r.payload for r in rows} == {i: stored(box)[i] for i in (r.id for r in rows)}


def test_a_reconnect_sends_the_unacknowledged_again_then_memory_goes_on(box: Outbox) -> None:
    publisher = Publisher(box)
    box.put([item("a", v) for v in range(5)])
    first = publisher.take()
    box.ack([r.id for r in first[:2]], sum(len(r.payload) for r in first[:2]))
    publisher.reconnect()
    box.put([item("a", 5)])
    assert values(publisher.take()) == [2, 3, 4, 5]
    box.put([item("a", 6)])
    assert values(publisher.take()) == [6]


def test_dropped_and_dead_lettered_rows_are_not_handed_out(tmp_path: Path) -> None:
    payload = len(encode_event(new_event("a", "x", 1), 1, "gw"))
    bound = OutboxLimits(max_bytes=12 * (payload + 48), when_full="drop_oldest")
    box = Outbox(tmp_path / "o.db", "gw", limits=bound)
    box.open()
    try:
        publisher = Publisher(box)
        box.put([item("a", v) for v in range(10)])
        box.put([item("a", v) for v in range(10, 20)])  # drops the oldest to fit
        assert box.stats.drops["dropped_full"] > 0
        rows = publisher.take()
        assert {r.id: r.payload for r in rows} == stored(box)
        box.put([item("a", 20), item("a", 21)])
        (victim,) = [i for i, p in stored(box).items() if json.loads(p)["value"] == 21]
        assert box.reject([victim], "refused") == 1  # before it was handed out
        assert values(publisher.take()) == [20]
    finally:
        box.close()


def test_more_than_memory_holds_is_read_from_the_file(box: Outbox) -> None:
    box._fresh.max_bytes = 2000  # a few rows: every commit below overflows it
    publisher = Publisher(box)
    for start in range(0, 60, 20):
        box.put([item("a", v) for v in range(start, start + 20)])
    assert values(publisher.take(25)) == list(range(25))
    assert values(publisher.take()) == list(range(25, 60))
    assert box._fresh.bytes <= 2000


def test_a_payload_held_until_its_puback_costs_its_size_not_a_buffer() -> None:
    # orjson writes into a 4 KiB buffer that the bytes it returns keep; held for every
    # event in flight, that was most of the gateway's memory under load.
    event = new_event("greenhouse", "temperature", 21.5, unit="°C")
    tracemalloc.start()
    try:
        held = [encode_event(event, seq, "gw") for seq in range(1000)]
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert used < 1000 * (len(held[0]) + 200)


def test_after_reading_the_file_to_its_end_memory_serves_again(box: Outbox) -> None:
    box._fresh.max_bytes = 2000
    publisher = Publisher(box)
    box.put([item("a", v) for v in range(20)])  # too much to keep: read from the file
    assert values(publisher.take()) == list(range(20))
    # Every class, the empty ones too, was read to its end: the next commit comes
    # from memory, with no read of the file (its rows are damaged there, not in memory).
    assert all(box._fresh.serves(p, publisher.cursors[p]) for p in range(3))
    box.put([item("a", 20)])
    unpack_segments(box.db).execute("UPDATE outbox_normal SET crc = crc + 1")
    assert values(publisher.take()) == [20]
