"""A start on a disk someone else filled (issue 9, second review): the gateway must not
exit (a restart loop under systemd). It runs without its outbox, holds events in
memory, counts what memory cannot hold at once and for good, answers `tidegate
status`, and opens the outbox as soon as the disk has room. An upgrade of an older
outbox that does not fit waits the same way.

A real gateway process on a real 3 MB filesystem (tmpfs; skipped where mounting is
not permitted). "Another writer" fills the disk and, as in the review's scenario,
has also taken the room the outbox's reserve gave back.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.outbox.support import (
    buffer_stats,
    disk_gateway_config,
    fill_disk,
    old_outbox,
    small_disk,
    status_json,
)
from tests.support import GatewayProcess, Subscriber, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.ops.status import render_status
from tidegate.outbox.disk import OutboxNoSpace, reserve_path
from tidegate.outbox.ledger.file import ledger_path, read_ledger
from tidegate.outbox.store import Outbox

WAITING = "waiting for disk space"


def free(disk: Path) -> int:
    st = os.statvfs(disk)
    return st.f_bfree * st.f_frsize


def fill_for_good(disk: Path) -> list[Path]:
    """Fill the disk, and take the room the outbox's reserve would give back too (the
    runaway writer of the review took it back at once)."""
    fillers = [fill_disk(disk)]
    reserve_path(disk / "data" / "outbox.db").unlink(missing_ok=True)
    fillers.append(fill_disk(disk, "filler2"))
    assert free(disk) == 0
    return fillers


class Running:
    """A gateway process whose status is read while it runs; it must not exit."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.gw = GatewayProcess(config, log).start()

    def status(self) -> dict[str, Any]:
        assert self.gw.process is not None
        assert self.gw.process.poll() is None, f"the gateway exited:\n{self.gw.output()}"
        return status_json(self.config) or {}

    def outbox(self) -> dict[str, Any]:
        section: dict[str, Any] = self.status().get("outbox", {})
        return section

    def memory_drops(self) -> int:
        drops: int = self.status().get("pipeline", {}).get("memory_drops", 0)
        return drops

    def stop(self) -> None:
        assert self.gw.stop() == 0, self.gw.output()


def commit_backlog(tmp_path: Path, disk: Path, count: int) -> None:
    """A first run, on a disk with room: ``count`` events stay in the outbox."""
    run = Running(
        disk_gateway_config(
            tmp_path, disk, "backlog", f"{{name: n, kind: counter, rate: 2000, count: {count}}}"
        ),
        tmp_path / "backlog.log",
    )
    try:
        wait_until(lambda: run.outbox().get("accepted") == count, 30, "the backlog committed")
    finally:
        run.stop()


def test_a_start_on_a_full_disk_waits_for_room_then_delivers_everything(
    tmp_path: Path, broker: LocalBroker
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        commit_backlog(tmp_path, disk, 300)
        fillers = fill_for_good(disk)
        sub = Subscriber(broker.host, broker.port, "tidegate/full/alpha/#").start()
        mqtt = f"mqtt: {{host: {broker.host}, port: {broker.port}}}"
        run = Running(
            disk_gateway_config(
                tmp_path, disk, "live", "{name: n, kind: counter, rate: 1000}", mqtt
            ),
            tmp_path / "live.log",
        )
        try:
            wait_until(lambda: run.outbox().get("state") == WAITING, 30, "status while full")
            wait_until(
                lambda: run.outbox()["dropped_pending"].get("dropped_memory", 0) > 0,
                30,
                "events beyond memory_max_events counted as dropped",
            )
            during = run.status()
            assert "no space left on" in during["outbox"]["not_open"]
            assert str(disk) in during["outbox"]["not_open"]
            assert during["outbox"]["depth"] == 300  # as the ledger last described it
            assert during["outbox"]["held_in_memory"] >= 1000  # memory_max_events, held
            assert during["broker"]["connects"] == 0  # the publisher waits for the outbox
            assert WAITING.upper() in render_status(during)
            assert sub.count() == 0

            for filler in fillers:
                filler.unlink()  # room again: the outbox opens, everything flows
            wait_until(lambda: run.outbox().get("state") == "open", 30, "the outbox open")
            wait_until(
                lambda: set(range(1, 401)) <= {e["seq"] for e in sub.events()},
                30,
                "the backlog and new events at the subscriber",
            )
            wait_until(lambda: run.outbox()["dropped_pending"] == {}, 30, "the drops committed")
            after = run.status()
            drops = after["pipeline"]["memory_drops"]
            assert after["outbox"]["dropped"]["dropped_memory"] == drops > 0
            assert after["outbox"]["not_open"] is None
        finally:
            run.stop()
            sub.stop()
        log = run.gw.output()
        assert log.count("no space left on") == 1, log  # said once, not every retry
        assert "Traceback" not in log
        assert buffer_stats(disk / "data" / "outbox.db")["counters"]["dropped_memory"] == drops


def test_drops_counted_while_the_outbox_waits_survive_a_stop_exactly(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "data" / "outbox.db"
        commit_backlog(tmp_path, disk, 50)
        fillers = fill_for_good(disk)
        fast = disk_gateway_config(tmp_path, disk, "fast", "{name: n, kind: counter, rate: 2000}")
        first = Running(fast, tmp_path / "first.log")
        try:
            wait_until(lambda: first.memory_drops() > 0, 30, "drops")
        finally:
            first.stop()  # a stop while the outbox waits: exit 0, the count kept
        status, ledger = read_ledger(ledger_path(db))
        assert status == "ok" and ledger is not None
        kept = ledger.memory_noted - ledger.memory_applied
        assert kept > 0  # every drop of the first run, those of the stop included

        second = Running(fast, tmp_path / "second.log")
        try:
            # At once, from the ledger: the first run's drops are not forgotten.
            wait_until(lambda: second.outbox().get("state") == WAITING, 30, "waiting")
            assert second.outbox()["dropped_pending"]["dropped_memory"] >= kept
            wait_until(lambda: second.memory_drops() > 0, 30, "drops")
            for filler in fillers:
                filler.unlink()
            wait_until(lambda: second.outbox().get("state") == "open", 30, "the outbox open")
            wait_until(lambda: second.outbox()["dropped_pending"] == {}, 30, "committed")
            doc = second.status()
        finally:
            second.stop()
        total = kept + doc["pipeline"]["memory_drops"]
        assert doc["outbox"]["dropped"]["dropped_memory"] == total  # each once, none twice
        assert buffer_stats(db)["counters"]["dropped_memory"] == total


@pytest.mark.parametrize(("version", "per_source", "room"), [(1, 300, 200), (2, 300, 0)])
def test_an_upgrade_the_disk_has_no_room_for_waits_and_keeps_every_event(
    tmp_path: Path, version: int, per_source: int, room: int
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "data" / "outbox.db"
        db.parent.mkdir()
        payloads = old_outbox(db, version, per_source)
        filler = fill_disk(disk)
        os.truncate(filler, filler.stat().st_size - room * 1024)  # a nearly full disk
        box = Outbox(db, "gw")
        # Schema 1's upgrade copies every row: more than ``room`` KiB. Schema 2's
        # only adds columns, but not even SQLite's shared memory fits.
        with pytest.raises(OutboxNoSpace, match="no space left on"):
            box.open()
        filler.unlink()
        conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
        try:  # left as it was: not half upgraded
            assert conn.execute("PRAGMA user_version").fetchone()[0] == (version - 1) * 2
        finally:
            conn.close()
        box.open()  # the same outbox, tried again once there is room
        assert [r.payload for r in box.take(10_000)] == payloads
        box.close()
