"""Stored events carry a checksum (issue 9): bytes damaged inside a payload are never
published as data; and an upgrade keeps every undelivered event of an older schema."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.outbox.stored import stored_events, unpack_segments
from tests.outbox.support import SOURCES, buffer_stats, item, old_outbox
from tests.support import TIDEGATE, GatewayProcess, Subscriber, wait_until, write_config
from tidegate.demo.local_broker import LocalBroker
from tidegate.outbox import segment_store
from tidegate.outbox.integrity import CHECKSUM_MISMATCH, checksum
from tidegate.outbox.schema import SCHEMA_VERSION
from tidegate.outbox.store import Outbox


def damage_payload(db: Path, event_id: str) -> None:
    """Overwrite 8 bytes inside the stored payload holding ``event_id``, found by
    searching the file's bytes (as a bad sector or a bit flip would leave it)."""
    data = bytearray(db.read_bytes())
    at = data.find(event_id.encode())
    assert at > 0, "the payload is in the database file"
    assert data.find(event_id.encode(), at + 1) < 0
    data[at + 10 : at + 18] = b"DAMAGED!"
    db.write_bytes(bytes(data))


def test_a_damaged_payload_goes_to_the_dead_letters_not_to_the_broker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "o.db"
    box = Outbox(db, "gw")
    box.open()
    box.put([item(s, i) for i in range(100) for s in SOURCES])
    ids = [json.loads(r.payload)["id"] for r in box.take(1000)]
    unpack_segments(box.db)  # rows: payloads as they are, in the file's bytes
    box.close()  # the WAL is checkpointed into the file
    damage_payload(db, ids[10])
    damage_payload(db, ids[150])
    again = Outbox(db, "gw")
    with caplog.at_level(logging.ERROR):
        again.open()  # quick_check says "ok": the file's structure is sound
        rows = again.take(1000)
    taken = [json.loads(r.payload)["id"] for r in rows]
    assert taken == [i for n, i in enumerate(ids) if n not in (10, 150)]
    assert again.stats.drops["damaged_rows"] == 2
    assert again.stats.dead_letters == 2
    reasons = again.db.execute("SELECT stage, reason, payload FROM dead_letters").fetchall()
    assert {(stage, reason) for stage, reason, _ in reasons} == {("outbox", CHECKSUM_MISMATCH)}
    assert all(b"DAMAGED!" in payload for _, _, payload in reasons)  # kept as found
    assert [r.getMessage() for r in caplog.records] == [
        f"2 stored events failed a check ({CHECKSUM_MISMATCH}): moved to dead letters"
    ]
    again.close()


def stored(db: Path) -> int:
    """Undelivered events in the file (0 while the gateway is still creating it)."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return len(stored_events(conn))
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_a_damaged_payload_in_the_real_gateway(tmp_path: Path, broker: LocalBroker) -> None:
    data = tmp_path / "data"
    drivers = """
drivers:
  - name: alpha
    type: sim
    signals: [{name: n, kind: counter, rate: 2000, count: 300}]
"""
    offline = write_config(
        tmp_path / "offline.yaml", f"gateway: {{id: crc, data_dir: {data}}}\n{drivers}"
    )
    gw = GatewayProcess(offline, tmp_path / "gw1.log").start()
    try:
        wait_until(lambda: stored(data / "outbox.db") == 300, 30, "300 events stored")
    finally:
        assert gw.stop() == 0, gw.output()
    conn = sqlite3.connect(data / "outbox.db", isolation_level=None)
    try:
        unpack_segments(conn)  # rows: the payload as it is, in the file's bytes
        victim = json.loads(stored_events(conn)[123][2])
    finally:
        conn.close()  # the WAL is checkpointed into the file
    damage_payload(data / "outbox.db", victim["id"])
    sub = Subscriber(broker.host, broker.port, "tidegate/crc/#").start()
    online = write_config(
        tmp_path / "online.yaml",
        f"gateway: {{id: crc, data_dir: {data}}}\n"
        f"mqtt: {{host: {broker.host}, port: {broker.port}}}\n"
        + drivers.replace("count: 300", "count: 1"),
    )
    gw = GatewayProcess(online, tmp_path / "gw2.log").start()
    try:
        wait_until(lambda: sub.count() >= 300, 30, "the intact events at the subscriber")
    finally:
        assert gw.stop() == 0, gw.output()
        sub.stop()
    received = sub.events()
    seqs = sorted(e["seq"] for e in received)
    assert seqs == [s for s in range(1, 302) if s != victim["seq"]]  # 299 old, 1 new
    assert not any(b"DAMAGED!" in m.payload for m in sub.snapshot())
    peek = subprocess.run(
        [*TIDEGATE, "buffer", "peek", "--dead-letters", "--jsonl", "--db", str(data / "outbox.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (letter,) = [json.loads(line) for line in peek.stdout.splitlines()]
    assert letter["reason"] == CHECKSUM_MISMATCH and letter["stage"] == "outbox"
    assert gw.output().count("failed a check") == 1


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_schema_is_upgraded_in_place_keeping_every_event(
    tmp_path: Path, version: int, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "o.db"
    payloads = old_outbox(db, version, per_source=40)
    box = Outbox(db, "gw")
    with caplog.at_level(logging.WARNING):
        box.open()
    assert box.stats.moved_aside is None
    assert f"upgraded from schema {version} to {SCHEMA_VERSION}" in caplog.text
    assert box.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    rows = box.take(1000)
    assert [r.payload for r in rows] == payloads  # every event, as it was, in order
    assert [r.topic for r in rows[:1]] == ["t/alpha"]
    box.ack([r.id for r in rows[:10]])
    box.put([item("alpha", 1)])
    new = box.take(1000)[-1]
    assert json.loads(new.payload)["seq"] == 41  # seq continues
    (seg,) = segment_store.overlapping(box.db, 1, new.id, new.id)  # a new commit: a segment
    assert segment_store.read(box.db, 1, seg.id).crcs[new.id - seg.id] == checksum(new.payload)
    box.close()
    assert buffer_stats(db)["depth"] == 2 * 40 - 10 + 1


def test_buffer_tools_read_a_schema_2_file_and_ask_for_a_start_before_writing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "o.db"
    old_outbox(db, 2, per_source=5)
    assert buffer_stats(db)["depth"] == 10
    replay = subprocess.run(
        [*TIDEGATE, "buffer", "purge", "--all", "--yes", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert replay.returncode == 1
    assert "start the gateway once" in replay.stderr and "Traceback" not in replay.stderr
