"""The outbox's ledger keeps its promises (issue 9, second review): a loss is counted
exactly (never delivered events, never a purge), the ledger is tied to its file, and
it survives being deleted or replaced while the gateway runs. Real files, real
processes killed by SIGKILL, the real CLI. (Refused starts: test_outbox_refusals.py.)"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.outbox.support import (
    WAL_HEADER,
    buffer_cli,
    damage,
    errors,
    item,
    run_and_kill,
    stored_ids,
    valid_wal_frames,
)
from tidegate.outbox.admin.note import note_admin_change
from tidegate.outbox.ledger.file import ledger_path, read_ledger
from tidegate.outbox.store import Outbox


def skipped_ranges(message: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(r"(\d+)\.\.(\d+) skipped", message)]


# -- 1. a cut log is charged with the undelivered events it lost, exactly ------------------

DELIVER_AS_IT_COMES = """
cursors = [0, 0, 0]
undelivered = []
for n in range(30):
    batch = [item("alpha", n * 10 + i) for i in range(10)]
    box.put(batch)
    rows = box.take(100, cursors)
    cursors[1] = rows[-1].id
    ids = [json.loads(r.payload)["id"] for r in rows]
    if KEEP:
        # One refused (a dead letter), some acked, the newest KEEP left undelivered:
        # the acks and the refusal leave holes above the oldest undelivered row.
        box.reject([rows[6].id], "refused")
        box.ack([r.id for r in rows[:6]])
        undelivered += ids[10 - KEEP:]
    else:
        box.ack([r.id for r in rows])
out = {"undelivered": undelivered, "max_seq": box.last_seq("alpha"), "depth": box.stats.depth}
"""


@pytest.mark.parametrize("keep", [0, 3])
def test_a_cut_log_is_charged_only_with_the_undelivered_events_it_lost(
    tmp_path: Path, keep: int, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "o.db"
    before = run_and_kill(DELIVER_AS_IT_COMES.replace("KEEP", str(keep)), db)
    assert before["depth"] == 30 * keep
    damage(db, "wal_cut_mid_frame")  # the second half of the commits is gone
    box = Outbox(db, "gw")
    with caplog.at_level(logging.WARNING):
        box.open()
    gone = len(set(before["undelivered"]) - stored_ids(db))
    lost = box.stats.drops.get("lost_in_recovery", 0)
    assert lost == gone  # exact, by id: delivered events brought back are not lost
    assert box.stats.recovery is not None and box.stats.recovery.lost == gone
    message = box.stats.recovery.message
    if keep:
        assert 0 < gone < len(before["undelivered"])
        assert errors(caplog) == [message] and f"{gone:,} undelivered events lost" in message
    else:
        assert gone == 0 and not errors(caplog)
        assert "no undelivered event was lost" in message
    # Seqs the receiver may have are never called skipped; new ones are above them all.
    ranges = skipped_ranges(message)
    assert ranges and all(first > before["max_seq"] for first, _ in ranges), message
    assert f"up to {before['max_seq']} used" in message
    box.put([item("alpha", -1)])
    assert box.last_seq("alpha") > before["max_seq"]
    box.close()


# -- 2. a purge is not a loss ----------------------------------------------------------------


def purge_with_the_cli(db: Path) -> None:
    done = buffer_cli("purge", "--outbox", "--yes", "--db", str(db))
    assert done.returncode == 0 and "purged 1,000 undelivered events" in done.stdout, done


@pytest.mark.parametrize("noticed_by", ["take", "close"])
def test_a_purge_next_to_the_running_gateway_is_never_counted_as_a_loss(
    tmp_path: Path, noticed_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "o.db"
    box = Outbox(db, "gw")
    box.open()
    for _ in range(20):
        box.put([item("alpha", i) for i in range(50)])
    purge_with_the_cli(db)
    if noticed_by == "take":
        assert box.take(100) == []  # the publisher's next look sees the admin change
        state = read_ledger(ledger_path(db))[1]
        assert state is not None and state.depth == 0
    box.close()
    damage(db, "missing")  # later, the file is lost: it held nothing undelivered
    again = Outbox(db, "gw")
    with caplog.at_level(logging.WARNING):
        again.open()
    assert again.stats.drops.get("lost_in_recovery", 0) == 0
    assert again.stats.drops["purged_outbox"] == 1000  # the ledger kept that count too
    assert not errors(caplog)
    again.close()


def test_a_purge_of_a_stopped_gateway_noted_in_its_ledger_is_not_a_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "o.db"
    box = Outbox(db, "gw")
    box.open()
    for _ in range(20):
        box.put([item("alpha", i) for i in range(50)])
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        assert note_admin_change(db, conn) == "gateway running"  # its own ledger: left alone
        box.close()
        purge_with_the_cli(db)  # (what `tidegate buffer purge` calls after its writes)
        assert note_admin_change(db, conn) == "updated"
    finally:
        conn.close()
    state = read_ledger(ledger_path(db))[1]
    assert state is not None and state.depth == 0
    assert state.counters["purged_outbox"] == 1000
    damage(db, "missing")
    again = Outbox(db, "gw")
    with caplog.at_level(logging.WARNING):
        again.open()
    assert again.stats.drops.get("lost_in_recovery", 0) == 0 and not errors(caplog)
    again.put([item("alpha", 1)])
    assert again.last_seq("alpha") > 1000
    again.close()


# -- 7. the ledger is tied to its file ---------------------------------------------------------


def test_another_outbox_put_in_place_is_counted_like_a_lost_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mine, other = tmp_path / "a" / "o.db", tmp_path / "b" / "o.db"
    box = Outbox(mine, "a")
    box.open()
    for _ in range(20):
        box.put([item("alpha", i) for i in range(50)])  # 1,000 undelivered here
    box.close()
    theirs = Outbox(other, "b")
    theirs.open()
    for _ in range(100):
        theirs.put([item("alpha", i) for i in range(50)])  # seq 5,000 there, delivered
    cursors = [0, 0, 0]
    while rows := theirs.take(1000, cursors):
        cursors[1] = rows[-1].id
        theirs.ack([r.id for r in rows])
    theirs.close()
    shutil.copy(other, mine)  # a backup of another device restored over this one
    again = Outbox(mine, "a")
    with caplog.at_level(logging.WARNING):
        again.open()
    assert again.stats.drops["lost_in_recovery"] == 1000
    assert again.stats.drops["replaced_recoveries"] == 1
    (line,) = errors(caplog)
    assert "is not the file its ledger describes" in line and "1,000 undelivered" in line
    again.put([item("alpha", 1)])
    assert again.last_seq("alpha") > 5000  # above every seq of both files
    again.close()
    caplog.clear()
    third = Outbox(mine, "a")  # the ledger now belongs to this file: nothing to report
    with caplog.at_level(logging.WARNING):
        third.open()
    assert not caplog.records and third.stats.drops["lost_in_recovery"] == 1000
    third.close()


def test_a_cut_log_reaching_back_to_the_first_start_is_not_taken_for_another_outbox(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "o.db"
    before = run_and_kill(
        """
        box.put([item("alpha", i) for i in range(50)])
        out = {"max_seq": box.last_seq("alpha")}
        """,
        db,
    )
    frame, _ = valid_wal_frames(Path(f"{db}-wal"))
    os.truncate(f"{db}-wal", WAL_HEADER + frame // 2)  # every commit in the log is gone
    box = Outbox(db, "gw")
    with caplog.at_level(logging.WARNING):
        box.open()
    assert "replaced_recoveries" not in box.stats.drops
    assert box.stats.drops["lost_in_recovery"] == 50 - box.stats.depth == 50
    (line,) = errors(caplog)
    assert "lost its last commits" in line and "50 undelivered events lost" in line
    box.put([item("alpha", 0)])
    assert box.last_seq("alpha") > before["max_seq"]
    box.close()


# -- 8. a ledger deleted or replaced while the gateway runs --------------------------------------


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_ledger_deleted_or_replaced_while_running_is_written_again(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "o.db"
    box = Outbox(db, "gw")
    box.open()
    box.put([item("alpha", i) for i in range(10)])
    ledger = ledger_path(db)
    old = ledger.read_bytes()
    box.put([item("alpha", i) for i in range(10)])
    if how == "deleted":
        ledger.unlink()
    else:
        (tmp_path / "old").write_bytes(old)
        (tmp_path / "old").replace(ledger)
    with caplog.at_level(logging.WARNING):
        box.put([item("alpha", 1)])
    state = read_ledger(ledger)[1]
    assert state is not None and state.committed == {"alpha": 21} and state.depth == 21
    assert f"the outbox ledger {ledger} was {'deleted' if how == 'deleted' else 'replaced'}" in (
        caplog.records[0].getMessage()
    )
    assert oct(ledger.stat().st_mode & 0o777) == "0o600"
    box.close()


def test_a_ledger_deleted_before_a_kill_and_a_cut_log_still_keeps_seq_from_repeating(
    tmp_path: Path,
) -> None:
    db = tmp_path / "o.db"
    before = run_and_kill(
        """
        box.put([item("alpha", i) for i in range(10)])
        os.unlink(f"{sys.argv[1]}.ledger")  # a cleanup script, or the user
        for n in range(30):
            box.put([item("alpha", i) for i in range(10)])
        out = {"max_seq": box.last_seq("alpha")}
        """,
        db,
    )
    assert ledger_path(db).exists()
    damage(db, "wal_cut_mid_frame")
    box = Outbox(db, "gw")
    box.open()
    box.put([item("alpha", 0)])
    assert box.last_seq("alpha") > before["max_seq"]
    assert box.stats.drops["lost_in_recovery"] == before["max_seq"] - box.stats.depth + 1
    box.close()


