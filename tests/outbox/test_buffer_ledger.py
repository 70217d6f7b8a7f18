"""`tidegate buffer purge` and `replay` on a stopped gateway's outbox keep its ledger
exact (issue 9, second review): if the file is lost after a purge, the purged events
are not counted as lost (and `purged_outbox` is kept); events a replay put back are."""

from __future__ import annotations

from pathlib import Path

from tests.outbox.support import buffer_stdout, item
from tidegate.outbox.ledger.reconcile import LOST
from tidegate.outbox.store import Outbox


def buffer(*args: str) -> str:
    return buffer_stdout(*args, "--yes")


def lose(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def reopened(db: Path) -> dict[str, int]:
    box = Outbox(db, "gw")
    box.open()
    drops = dict(box.stats.drops)
    box.close()
    return drops


def test_a_purge_while_stopped_is_not_counted_as_a_loss_when_the_file_is_lost(
    tmp_path: Path,
) -> None:
    db = tmp_path / "outbox.db"
    box = Outbox(db, "gw")
    box.open()
    for n in range(10):
        box.put([item("alpha", n * 100 + i) for i in range(100)])
    box.close()  # a clean stop with 1,000 undelivered events
    assert "purged 1,000 undelivered events" in buffer("purge", "--outbox", "--db", str(db))
    lose(db)
    drops = reopened(db)
    assert drops.get(LOST, 0) == 0  # nothing undelivered was lost: it was purged
    assert drops["purged_outbox"] == 1000  # and the purge's count survives the file


def test_events_a_replay_put_back_while_stopped_are_counted_when_the_file_is_lost(
    tmp_path: Path,
) -> None:
    db = tmp_path / "outbox.db"
    box = Outbox(db, "gw")
    box.open()
    box.put([item("alpha", i) for i in range(30)])
    rows = box.take(30)
    box.reject([r.id for r in rows[:10]], "broker refused the message: Not authorized")
    box.ack([r.id for r in rows[10:]])
    box.close()  # nothing undelivered; 10 dead letters
    assert "replayed 10 events" in buffer("replay", "--db", str(db))
    lose(db)
    assert reopened(db).get(LOST, 0) == 10
