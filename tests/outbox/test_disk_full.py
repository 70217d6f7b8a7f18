"""A disk the gateway fills by itself, and one someone else fills (issue 9).

A real gateway process on a real 3 MB filesystem (tmpfs; these tests are skipped
where mounting is not permitted). The gateway must keep starting, delivering and
deleting; never send again what it delivered; and count every drop at once,
visibly, and for good.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.outbox.stored import stored_payloads
from tests.outbox.support import (
    buffer_stats,
    disk_gateway_config,
    fill_disk,
    item,
    small_disk,
    status_json,
)
from tests.support import GatewayProcess, Subscriber, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.errors import BufferError_
from tidegate.ops.metrics import prometheus_text
from tidegate.outbox.store import Outbox

RATE = 2000
"""Events/s: the issue's 500/s, four times over, to fill the disk within seconds."""


def status(config: Path) -> dict[str, Any]:
    """The status document; {} while no gateway answers."""
    return status_json(config) or {}


def outbox(doc: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = doc.get("outbox", {})
    return section


def outbox_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return {
            p.decode().split('"id":"', 1)[1].split('"', 1)[0]
            for p in stored_payloads(conn)
        }
    finally:
        conn.close()


def test_a_gateway_filling_a_small_disk_keeps_starting_delivering_and_deleting(
    tmp_path: Path,
) -> None:
    broker = LocalBroker(tmp_path / "broker", persistent=True)
    broker.start()
    sub = Subscriber(broker.host, broker.port, "tidegate/full/alpha/#")
    sub.start_persistent("full-sub")  # the broker queues for it while it is away
    broker.stop()
    mqtt = (
        f"mqtt: {{host: {broker.host}, port: {broker.port}, "
        "reconnect: {initial_delay: 100ms, max_delay: 300ms}}"
    )
    try:
        with small_disk(tmp_path / "disk") as disk:
            # Other files take part of the disk (logs, say): the outbox fills in seconds.
            (disk / "other").write_bytes(bytes(1200 * 1024))
            db = disk / "data" / "outbox.db"
            running = disk_gateway_config(
                tmp_path, disk, "fill", f"{{name: n, kind: counter, rate: {RATE}}}", mqtt
            )
            gw = GatewayProcess(running, tmp_path / "gw1.log").start()
            try:
                wait_until(
                    lambda: outbox(status(running)).get("dropped", {}).get("dropped_full", 0) > 0,
                    30,
                    "the disk's bound to drop the oldest",
                    poll=0.2,
                )
                full = status(running)
            finally:
                assert gw.stop() == 0, gw.output()  # a stop while full
            # Full, and counted as such while it was: never a failed commit. (The bound
            # counts payloads as sent; stored compressed, ~4x as many fit the 3 MB disk.)
            assert full["outbox"]["max_bytes"] < 16_000_000
            assert full["pipeline"]["commit_failures"] == 0
            kept = buffer_stats(db)["counters"]
            assert kept["dropped_full"] >= full["outbox"]["dropped"]["dropped_full"]

            # It starts again on the full disk, with its counters.
            short = disk_gateway_config(
                tmp_path, disk, "again", "{name: n, kind: counter, rate: 2000, count: 500}", mqtt
            )
            gw = GatewayProcess(short, tmp_path / "gw2.log").start()
            try:
                wait_until(
                    lambda: outbox(status(short)).get("accepted") == 500,
                    30,
                    "the second run up and accepting on the full disk",
                    poll=0.2,
                )
                assert status(short)["outbox"]["dropped"]["dropped_full"] >= kept["dropped_full"]
                waiting = outbox_ids(db)
                assert len(waiting) > 3000
                broker.start()  # the broker returns: everything waiting is delivered, once
                wait_until(
                    lambda: outbox(status(short)).get("depth") == 0,
                    60,
                    "the outbox delivered and emptied",
                    poll=0.2,
                )
                wait_until(
                    lambda: waiting <= {e["id"] for e in sub.events()},
                    30,
                    "every waiting event at the subscriber",
                    poll=0.2,
                )
            finally:
                assert gw.stop() == 0, gw.output()
            ids = [e["id"] for e in sub.events()]
            assert len(ids) == len(set(ids)), "an event was sent twice"
            after = buffer_stats(db)
            assert after["depth"] == 0  # what was delivered was deleted, on a full disk
            assert "database or disk is full" not in gw.output()
    finally:
        sub.stop()
        broker.kill()


def test_drops_while_the_disk_is_full_are_counted_at_once_kept_and_never_twice(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "data" / "outbox.db"
        signal = f"{{name: n, kind: counter, rate: {RATE}}}"
        cfg = disk_gateway_config(tmp_path, disk, "gw", signal)
        gw = GatewayProcess(cfg, tmp_path / "gw1.log").start()
        try:
            wait_until(
                lambda: outbox(status(cfg)).get("accepted", 0) >= 500, 30, "a running gateway"
            )
            # Someone else fills the disk while a reader (an export, say) holds a snapshot:
            # the WAL cannot be checkpointed away, commits fail, memory overflows.
            reader = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM outbox").fetchone()
            fill_disk(disk)
            wait_until(
                lambda: outbox(status(cfg)).get("dropped_pending", {}).get("dropped_memory", 0)
                > 0,
                30,
                "memory drops while the disk is full",
                poll=0.2,
            )
            during = status(cfg)
            # Visible at once: in status (and so in metrics) and in `buffer stats`.
            assert during["pipeline"]["commit_failures"] > 0
            pending = during["outbox"]["dropped_pending"]["dropped_memory"]
            assert during["outbox"]["dropped"]["dropped_memory"] >= pending
            assert 'tidegate_outbox_dropped_pending{reason="dropped_memory"}' in prometheus_text(
                during
            )
            assert buffer_stats(db)["pending_drops"]["dropped_memory"] >= pending
            reader.rollback()
            reader.close()
        finally:
            assert gw.stop() == 0, gw.output()  # a stop while full
        stopped = buffer_stats(db)
        first_run = stopped["counters"].get("dropped_memory", 0) + stopped["pending_drops"].get(
            "dropped_memory", 0
        )
        assert first_run >= during["outbox"]["dropped"]["dropped_memory"]  # kept for good

        fill_disk(disk, "filler2")  # what the stop freed is taken too: not a block free
        gw = GatewayProcess(cfg, tmp_path / "gw2.log").start()
        try:
            wait_until(lambda: bool(status(cfg)), 30, "the gateway to start on a full disk")
            assert status(cfg)["outbox"]["dropped"]["dropped_memory"] >= first_run
            for filler in disk.glob("filler*"):
                filler.unlink()  # room again: commits resume and the pending drops land
            wait_until(
                lambda: outbox(status(cfg)).get("dropped_pending") == {},
                30,
                "the pending drops committed",
                poll=0.2,
            )
            accepted = status(cfg)["outbox"]["accepted"]
            wait_until(
                lambda: outbox(status(cfg)).get("accepted", 0) > accepted + 500,
                30,
                "commits again",
            )
            second = status(cfg)
        finally:
            assert gw.stop() == 0, gw.output()
        final = buffer_stats(db)
    # Moved from the ledger into the file exactly once: every drop of both runs, no more.
    assert final["pending_drops"] == {}
    assert final["counters"]["dropped_memory"] == first_run + second["pipeline"]["memory_drops"]
    assert second["outbox"]["dropped"]["dropped_memory"] == final["counters"]["dropped_memory"]


def test_a_delivered_event_whose_delete_fails_is_never_handed_out_again(tmp_path: Path) -> None:
    # The direct API on a real file: the delete fails inside SQLite (as on a disk that
    # is full even after the reserve went), then the process stops and starts again.
    db = tmp_path / "o.db"
    box = Outbox(db, "gw")
    box.open()
    box.put([item("alpha", i) for i in range(10)])
    rows = box.take(10)
    for n, write in enumerate(("DELETE ON outbox_normal", "INSERT ON segment_positions")):
        box.db.execute(  # rows, and a segment's delivered prefix
            f"CREATE TRIGGER full{n} BEFORE {write} "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    with pytest.raises(BufferError_, match="cannot delete delivered events"):
        box.ack([r.id for r in rows[:4]])
    assert box.stats.undeleted == 4
    assert [r.id for r in box.take(10)] == [r.id for r in rows[4:]]  # not after a reconnect
    box.close()
    again = Outbox(db, "gw")
    again.open()
    assert [r.id for r in again.take(10)] == [r.id for r in rows[4:]]  # nor after a restart
    again.db.execute("DROP TRIGGER full0")
    again.db.execute("DROP TRIGGER full1")
    assert again.ack([rows[4].id]) == 5  # the next ack deletes them too
    assert again.stats.undeleted == 0 and again.stats.depth == 5
    again.close()
