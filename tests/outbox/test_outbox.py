"""The outbox contract on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.outbox.support import valid_wal_frames
from tidegate.event import new_event
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing


def outgoing(source: str, value: float, topic: str = "t") -> Outgoing:
    return Outgoing(new_event(source, "x", value), topic, 1, False)


def open_outbox(path: Path) -> Outbox:
    box = Outbox(path, "gw")
    box.open()
    return box


def test_put_take_ack_in_acceptance_order(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.put([outgoing("a", i) for i in range(5)])
    rows = box.take(10)
    assert [json.loads(r.payload)["value"] for r in rows] == [0, 1, 2, 3, 4]
    assert box.stats.depth == 5
    box.ack([rows[0].id, rows[1].id])
    assert [json.loads(r.payload)["value"] for r in box.take(10)] == [2, 3, 4]
    assert box.stats.depth == 3
    assert box.take(10, (0, rows[3].id, 0)) == [rows[4]]


def test_nothing_is_deleted_without_ack_and_survives_reopen(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.put([outgoing("a", i) for i in range(3)])
    box.take(10)
    box.close()
    again = open_outbox(tmp_path / "o.db")
    assert again.stats.depth == 3
    assert len(again.take(10)) == 3


def test_seq_per_source_continues_across_restarts(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.put([outgoing("a", 1), outgoing("b", 1), outgoing("a", 2)])
    box.ack([r.id for r in box.take(10)])
    box.close()
    box = open_outbox(tmp_path / "o.db")
    box.put([outgoing("a", 3), outgoing("b", 2)])
    seqs = [(json.loads(r.payload)["source"], json.loads(r.payload)["seq"]) for r in box.take(10)]
    assert seqs == [("a", 3), ("b", 2)]


def test_row_ids_are_never_reused_after_the_outbox_empties(tmp_path: Path) -> None:
    # The publisher's cursor relies on ids only growing; SQLite reuses rowids
    # of an emptied table unless told not to.
    box = open_outbox(tmp_path / "o.db")
    box.put([outgoing("a", i) for i in range(3)])
    first = box.take(10)
    box.ack([r.id for r in first])
    box.put([outgoing("a", 9)])
    (row,) = box.take(10, (0, first[-1].id, 0))
    assert row.id > first[-1].id


def test_payload_carries_the_event(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    event = new_event("gh", "temp", 21.5, unit="°C", tags={"room": "n"}, time=1_700_000_000.25)
    box.put([Outgoing(event, "site/gh/temp", 0, True)])
    (row,) = box.take(1)
    doc = json.loads(row.payload)
    assert doc == {
        "id": event.id,
        "gateway": "gw",
        "source": "gh",
        "name": "temp",
        "value": 21.5,
        "time": "2023-11-14T22:13:20.250000Z",
        "seq": 1,
        "unit": "°C",
        "tags": {"room": "n"},
    }
    assert (row.topic, row.qos, row.retain) == ("site/gh/temp", 0, True)


def test_reject_moves_rows_to_dead_letters_with_reason(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.put([outgoing("a", 1), outgoing("a", 2)])
    rows = box.take(10)
    assert box.reject([rows[0].id], "broker refused: quota") == 1
    assert [r.id for r in box.take(10)] == [rows[1].id]
    assert box.stats.dead_letters == 1
    db = sqlite3.connect(tmp_path / "o.db")
    (reason, payload) = db.execute("SELECT reason, payload FROM dead_letters").fetchone()
    assert reason == "broker refused: quota"
    assert json.loads(payload)["value"] == 1


def test_wal_mode_and_durability_settings(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", "gw", durability="fsync")
    box.open()
    assert box.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    batch = open_outbox(tmp_path / "b.db")
    assert batch.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_deleting_delivered_events_does_not_write_the_pages_it_frees(tmp_path: Path) -> None:
    # Debian's SQLite zeroes and writes every freed page (SECURE_DELETE): acknowledging a
    # backlog wrote as many WAL pages as storing it had. Pages a delete frees stay unwritten.
    box = open_outbox(tmp_path / "o.db")
    box.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (before,) = box.db.execute("PRAGMA page_count").fetchone()
    box.put([outgoing("s", i) for i in range(2000)])
    box.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (after,) = box.db.execute("PRAGMA page_count").fetchone()
    stored_in = after - before
    rows = box.take(2000)
    assert box.ack([r.id for r in rows]) == 2000
    _, written = valid_wal_frames(tmp_path / "o.db-wal")
    assert written < stored_in * 0.7, (written, stored_in)
