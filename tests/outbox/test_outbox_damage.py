"""The outbox under damage (issue 9): whatever happens to the file, seq never repeats
for a source, and the events the damage cost are counted, logged and shown.

The setup is the issue's: some events delivered, then ~1,500 per source committed
with no broker; the gateway stops (or dies by SIGKILL); the file is damaged; it
starts again. The file cases use a stopped outbox (the direct API: a process adds
nothing there); the WAL cases a real process killed by SIGKILL; one case runs the
whole gateway, broker and subscriber.
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.outbox.stored import stored_payloads
from tests.outbox.support import (
    SOURCES,
    History,
    abandon,
    buffer_stats,
    copy_outbox,
    damage,
    fill,
    item,
    run_fill_and_kill,
    status_json,
    valid_wal_frames,
)
from tests.support import (
    GatewayProcess,
    Subscriber,
    assert_same_ids_for_duplicates,
    wait_until,
    write_config,
)
from tidegate.clock import ClockWatcher
from tidegate.demo.local_broker import LocalBroker
from tidegate.outbox.ledger.file import ledger_path
from tidegate.outbox.store import Outbox

FILE_DAMAGE = ["truncate_half", "overwrite_middle", "zero_header", "zero_bytes", "missing"]
WAL_DAMAGE = ["wal_overwrite_middle", "wal_cut_mid_frame"]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, History]:
    """An outbox after a clean stop: 200 delivered and 1,500 undelivered per source."""
    directory = tmp_path_factory.mktemp("stopped")
    box, history = fill(directory / "o.db")
    box.close()
    return directory, history


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, History]:
    """The same, from a process killed by SIGKILL: the undelivered events are in the WAL."""
    directory = tmp_path_factory.mktemp("killed")
    history = run_fill_and_kill(directory / "o.db")
    frame, n = valid_wal_frames(directory / "o.db-wal")
    assert n * frame > 100_000, "the undelivered events should be in the WAL"
    return directory, history


def reopen_after(
    template: tuple[Path, History], target: Path, how: str, caplog: pytest.LogCaptureFixture
) -> tuple[Outbox, History, int]:
    """Copy the template, damage it, open it. Returns the outbox, the history, and how
    many of the committed undelivered events are really gone (by id)."""
    copy_outbox(template[0], target)
    history = template[1]
    damage(target / "o.db", how)
    box = Outbox(target / "o.db", "gw")
    with caplog.at_level(logging.WARNING):
        box.open()
    present = {json.loads(r.payload)["id"] for r in box.take(100_000)}
    gone = len(set(history.undelivered) - present)
    return box, history, gone


def check_no_repeat_and_counted(
    box: Outbox, history: History, gone: int, caplog: pytest.LogCaptureFixture
) -> None:
    assert gone > 0
    # New events: every seq above every seq the source ever had.
    box.put([item(s, i) for i in range(5) for s in SOURCES])
    new = [json.loads(r.payload) for r in box.take(100_000)]
    fresh = [d for d in new if d["value"] < 5 and d["name"] == "x" and d["seq"] > 0]
    for source in SOURCES:
        seqs = [d["seq"] for d in fresh if d["source"] == source][-5:]
        assert min(seqs) > history.max_seq[source], (source, seqs, history.max_seq)
    # The loss is counted exactly, logged once as an error, and shown.
    assert box.stats.drops["lost_in_recovery"] == gone
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert f"{gone:,}" in errors[0] and "seq continues above" in errors[0]
    assert box.stats.recovery is not None and box.stats.recovery.lost == gone
    for source in SOURCES:
        assert f"{source}: " in errors[0] and "next" in errors[0]
    box.close()
    stats = buffer_stats(box.path)
    assert stats["counters"]["lost_in_recovery"] == gone
    assert stats["ledger"]["state"] == "ok"


@pytest.mark.parametrize("how", FILE_DAMAGE)
def test_a_damaged_stopped_outbox_never_repeats_seq_and_counts_the_loss(
    tmp_path: Path, stopped: tuple[Path, History], how: str, caplog: pytest.LogCaptureFixture
) -> None:
    box, history, gone = reopen_after(stopped, tmp_path, how, caplog)
    assert gone == len(history.undelivered)  # the file is gone: all its undelivered events
    check_no_repeat_and_counted(box, history, gone, caplog)


@pytest.mark.parametrize("how", WAL_DAMAGE)
def test_a_damaged_wal_after_kill_9_never_repeats_seq_and_counts_the_loss(
    tmp_path: Path, killed: tuple[Path, History], how: str, caplog: pytest.LogCaptureFixture
) -> None:
    box, history, gone = reopen_after(killed, tmp_path, how, caplog)
    assert 0 < gone < len(history.undelivered)  # the tail went, the head stayed
    check_no_repeat_and_counted(box, history, gone, caplog)


def closed_outbox_of_three(db: Path) -> None:
    """An outbox that stored alpha's seq 1..3 and was closed cleanly."""
    box = Outbox(db, "gw")
    box.open()
    box.put([item("alpha", i) for i in range(3)])
    box.close()


def reopened_with_a_put(db: Path, caplog: pytest.LogCaptureFixture) -> Outbox:
    """The outbox opened again (its warnings captured), and alpha's next event put."""
    again = Outbox(db, "gw")
    with caplog.at_level(logging.WARNING):
        again.open()
    again.put([item("alpha", 9)])
    return again


def test_a_zero_byte_file_without_a_ledger_is_a_new_outbox(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "o.db").touch()
    box = Outbox(tmp_path / "o.db", "gw")
    with caplog.at_level(logging.WARNING):
        box.open()
    assert box.put([item("alpha", 1)]) == 1
    assert json.loads(box.take(1)[0].payload)["seq"] == 1
    assert not caplog.records and box.stats.recovery is None and not box.stats.drops
    box.close()


def test_an_outbox_without_a_ledger_gets_one_silently_and_seq_continues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed_outbox_of_three(tmp_path / "o.db")
    ledger_path(tmp_path / "o.db").unlink()  # what an older tidegate left
    again = reopened_with_a_put(tmp_path / "o.db", caplog)
    assert json.loads(again.take(10)[-1].payload)["seq"] == 4
    assert not caplog.records and not again.stats.drops
    assert ledger_path(tmp_path / "o.db").exists()
    again.close()


def test_a_damaged_ledger_is_counted_and_seq_jumps_by_the_safety_margin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed_outbox_of_three(tmp_path / "o.db")
    ledger = ledger_path(tmp_path / "o.db")
    ledger.write_bytes(b"\x00" * ledger.stat().st_size)
    again = reopened_with_a_put(tmp_path / "o.db", caplog)
    assert json.loads(again.take(10)[-1].payload)["seq"] == 3 + 1_000_000 + 1
    assert again.stats.drops["ledger_damaged"] == 1
    assert "ledger" in caplog.records[0].getMessage()
    again.close()


def test_one_torn_ledger_slot_loses_nothing(tmp_path: Path) -> None:
    closed_outbox_of_three(tmp_path / "o.db")
    ledger = ledger_path(tmp_path / "o.db")
    size = ledger.stat().st_size
    with ledger.open("r+b") as f:  # the slot written last is torn: the other one is whole
        f.seek(0)
        f.write(b"\xff" * 64)
        f.seek(size // 2)
        data = f.read(64)
    again = Outbox(tmp_path / "o.db", "gw")
    again.open()
    assert data[:4] == b"TGL1"
    assert "ledger_damaged" not in again.stats.drops
    again.put([item("alpha", 9)])
    assert json.loads(again.take(10)[-1].payload)["seq"] == 4
    again.close()


@pytest.mark.parametrize("durability", ["batch", "fsync"])
def test_after_a_power_cut_seq_continues_above_the_marks_unless_commits_were_synced(
    tmp_path: Path, durability: str, caplog: pytest.LogCaptureFixture
) -> None:
    mode: Literal["batch", "fsync"] = "fsync" if durability == "fsync" else "batch"
    box = Outbox(tmp_path / "o.db", "gw", mode)
    box.open()
    box.put([item("alpha", i) for i in range(3)])
    # The power goes: nothing is closed, and the next start is in another boot.
    abandon(box)
    clock = ClockWatcher()
    clock.boot_id = "the-next-boot"
    again = Outbox(tmp_path / "o.db", "gw", mode, clock=clock)
    with caplog.at_level(logging.WARNING):
        again.open()
    again.put([item("alpha", 9)])
    seq = json.loads(again.take(10)[-1].payload)["seq"]
    if mode == "fsync":  # every commit was on the disk: nothing to skip
        assert seq == 4 and not caplog.records
    else:  # the last commits may have been lost with the page cache: skip above the mark
        assert seq > 10_000
        assert again.stats.drops["unclean_recoveries"] == 1
        assert "power cut" in caplog.records[0].getMessage()
    again.close()


# -- the whole gateway: kill -9, a damaged WAL, a restart -----------------------------------


def gateway_config(tmp_path: Path, broker: LocalBroker, per_source: int) -> Path:
    return write_config(
        tmp_path / "gw.yaml",
        f"""
gateway: {{id: dmg, data_dir: {tmp_path / "data"}}}
mqtt:
  host: {broker.host}
  port: {broker.port}
  reconnect: {{initial_delay: 100ms, max_delay: 500ms}}
control: {{socket: {tmp_path / "control.sock"}}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: 1000, count: {per_source}}}]
  - name: beta
    type: sim
    signals: [{{name: t, kind: sine, rate: 1000, count: {per_source}}}]
""",
    )


def read_outbox(db: Path) -> tuple[dict[str, int], set[str]]:
    """(last committed seq per source, undelivered ids), from a copy of the files."""
    conn = sqlite3.connect(db)
    try:
        committed = dict(conn.execute("SELECT source, last_seq FROM sources").fetchall())
        ids = {json.loads(p)["id"] for p in stored_payloads(conn)}
        return committed, ids
    finally:
        conn.close()


def status(config: Path) -> dict[str, Any]:
    """`tidegate status --json`; an empty document while no gateway answers (yet)."""
    return status_json(config) or {"outbox": {}}


def test_kill_9_then_a_damaged_wal_in_the_real_gateway(tmp_path: Path, broker: LocalBroker) -> None:
    per_source = 1700
    config = gateway_config(tmp_path, broker, per_source)
    db = tmp_path / "data" / "outbox.db"
    sub = Subscriber(broker.host, broker.port, "tidegate/dmg/#").start()
    gw = GatewayProcess(config, tmp_path / "gw1.log").start()
    try:
        wait_until(lambda: sub.count() >= 200, 30, "events delivered before the outage")
        broker.stop()
        wait_until(lambda: "connection lost" in gw.output(), 10, "the gateway to see the outage")
        wait_until(
            lambda: status(config)["outbox"].get("accepted") == 2 * per_source,
            30,
            "every event committed",
            poll=0.2,
        )
    finally:
        gw.signal(signal.SIGKILL)
        gw.wait(10)
    before = sub.events()
    sub.stop()
    copy_outbox(db.parent, tmp_path / "copy")
    committed, undelivered = read_outbox(tmp_path / "copy" / "outbox.db")
    assert committed == {"alpha": per_source, "beta": per_source}
    assert len(undelivered) > 2000
    damage(db, "wal_overwrite_middle")

    broker.start()
    # Subscribed before the gateway starts: it delivers the backlog at once, sooner than a
    # subscriber that lost its broker would reconnect.
    sub = Subscriber(broker.host, broker.port, "tidegate/dmg/#").start()
    again = GatewayProcess(config, tmp_path / "gw2.log").start()
    try:
        wait_until(
            lambda: status(config)["outbox"].get("depth") == 0
            and status(config)["outbox"].get("accepted") == 2 * per_source,
            60,
            "the second run's events and the survivors delivered",
            poll=0.2,
        )
        doc = status(config)
        old_ids = {e["id"] for e in before} | undelivered
        wait_until(
            lambda: len({e["id"] for e in sub.events()} - old_ids) == 2 * per_source,
            30,
            "the second run's events at the subscriber",
            poll=0.1,
        )
    finally:
        assert again.stop() == 0, again.output()
        sub.stop()
    events = before + sub.events()
    assert_same_ids_for_duplicates(events)  # no (source, seq) ever names two events
    for source in ("alpha", "beta"):
        new_seqs = [e["seq"] for e in events if e["source"] == source and e["id"] not in old_ids]
        assert len(new_seqs) == per_source
        assert min(new_seqs) > committed[source]
    gone = len(undelivered - {e["id"] for e in events})
    assert gone > 0
    assert doc["outbox"]["lost_in_recovery"] == gone
    assert doc["outbox"]["recovery"]["lost"] == gone
    assert f"{gone:,} undelivered events lost" in again.output()
    assert buffer_stats(db)["counters"]["lost_in_recovery"] == gone


def test_the_ledger_grows_with_the_sources_and_keeps_every_mark(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", "gw")
    box.open()
    small = ledger_path(tmp_path / "o.db").stat().st_size
    sources = [f"sensor-{i:04d}-with-a-long-name" for i in range(400)]
    box.put([item(s, 1) for s in sources])  # one durable reservation for 400 sources
    assert ledger_path(tmp_path / "o.db").stat().st_size > small  # grown by a rename
    box.close()
    damage(tmp_path / "o.db", "missing")
    again = Outbox(tmp_path / "o.db", "gw")
    again.open()
    again.put([item(s, 2) for s in sources])
    seqs = {d["source"]: d["seq"] for d in (json.loads(r.payload) for r in again.take(1000))}
    assert all(seq > 10_000 for seq in seqs.values()) and len(seqs) == 400
    again.close()
