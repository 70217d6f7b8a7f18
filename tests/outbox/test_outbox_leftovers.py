"""Leftovers of issue 9's outbox work: a checksum a damaged header byte made NULL, and
a lock file the disk has no room to create.

Real SQLite files and a real (tmpfs) filesystem that runs out of inodes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from pathlib import Path

import pytest

from tests.outbox.stored import unpack_segments
from tests.outbox.support import buffer_stats, item, old_outbox, small_disk
from tidegate.outbox.disk import OutboxNoSpace
from tidegate.outbox.integrity import CHECKSUM_MISSING, DAMAGED
from tidegate.outbox.schema import CRC_FROM_ID
from tidegate.outbox.store import Outbox


def null_crc(path: Path, row_id: int) -> None:
    """What a flipped serial-type byte (to 0, NULL) in a record header does to ``crc``;
    SQLite's own check still says "ok"."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        unpack_segments(db)
        db.execute("BEGIN")
        changed = 0
        for table in ("outbox_high", "outbox_normal", "outbox_low"):
            changed += db.execute(
                f"UPDATE {table} SET crc = NULL WHERE id = ?",  # noqa: S608 - constant names
                (row_id,),
            ).rowcount
        assert changed == 1
        db.commit()
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        db.close()


def counter(path: Path, name: str) -> int | None:
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])
    finally:
        db.close()


def stored(path: Path, n: int) -> list[bytes]:
    """Put ``n`` events in a (stopped gateway's) outbox; their payloads."""
    box = Outbox(path, "gw")
    box.open()
    try:
        before = {r.id for r in box.take(1000)}
        box.put([item("alpha", i) for i in range(n)])
        return [r.payload for r in box.take(1000) if r.id not in before]
    finally:
        box.close()


def test_a_new_file_treats_a_null_checksum_as_damage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "o.db"
    payloads = stored(db, 3)
    assert counter(db, CRC_FROM_ID) is not None  # recorded when the file was made
    null_crc(db, 2)

    box = Outbox(db, "gw")
    box.open()
    with caplog.at_level(logging.ERROR):
        first = box.take(10)
        second = box.take(10)
    assert [r.payload for r in first] == [payloads[0], payloads[2]]
    assert [r.payload for r in second] == [payloads[0], payloads[2]]
    assert box.stats.drops[DAMAGED] == 1
    assert CRC_FROM_ID not in box.stats.drops  # bookkeeping, not a drop
    (letter,) = box.db.execute("SELECT stage, reason, payload FROM dead_letters")
    assert letter == ("outbox", CHECKSUM_MISSING, payloads[1])  # raw bytes kept
    assert [r.getMessage() for r in caplog.records] == [
        f"1 stored event failed a check ({CHECKSUM_MISSING}): moved to dead letters"
    ]
    box.close()
    counters = buffer_stats(db)["counters"]
    assert counters[DAMAGED] == 1 and CRC_FROM_ID not in counters


@pytest.mark.parametrize("version", [1, 2])
def test_after_an_upgrade_old_rows_pass_unchecked_and_new_ones_must_have_a_checksum(
    tmp_path: Path, version: int
) -> None:
    db = tmp_path / "o.db"
    old = old_outbox(db, version, 3)  # 6 rows, ids 1-6, stored without checksums
    new = stored(db, 2)  # the upgrade happens at this open
    assert counter(db, CRC_FROM_ID) == 7  # the first id stored after the upgrade
    null_crc(db, 8)

    box = Outbox(db, "gw")
    box.open()
    taken = box.take(100)
    # The old rows' NULL is legitimate: published as they are. Row 8's is damage.
    assert sorted(r.payload for r in taken) == sorted([*old, new[0]])
    assert box.stats.drops[DAMAGED] == 1
    (reason,) = box.db.execute("SELECT reason FROM dead_letters").fetchone()
    assert reason == CHECKSUM_MISSING
    box.close()


# -- a lock file the disk has no room for ------------------------------------------------


def few_inodes(mountpoint: Path) -> contextlib.AbstractContextManager[Path]:
    """A real tmpfs with plenty of blocks but few inodes: creating a file there fails
    with ENOSPC once they are used up."""
    return small_disk(mountpoint, "8m", "nr_inodes=64")


def use_every_inode(directory: Path) -> list[Path]:
    fillers: list[Path] = []
    for n in range(10_000):
        path = directory / f"filler{n}"
        try:
            path.touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            return fillers
        fillers.append(path)
    raise AssertionError("the filesystem never ran out of inodes")


def test_no_room_for_the_lock_file_is_a_full_disk_to_wait_out(tmp_path: Path) -> None:
    with few_inodes(tmp_path / "disk") as disk:
        data = disk / "data"
        data.mkdir()
        fillers = use_every_inode(disk)
        box = Outbox(data / "outbox.db", "gw")
        # Not a plain BufferError_ (the gateway exits on those): the one it waits out.
        with pytest.raises(OutboxNoSpace, match="no space left on") as raised:
            box.open()
        assert "lock file" in str(raised.value)
        assert not (data / "outbox.db.lock").exists()

        for filler in fillers:
            filler.unlink()
        box.open()  # the gateway's next try, once there is room
        box.put([item("alpha", 1)])
        assert len(box.take(10)) == 1
        box.close()
        assert os.path.exists(data / "outbox.db.lock")


# -- buffer stats through a symlinked --db -----------------------------------------------


def test_buffer_stats_on_a_symlink_reads_the_ledger_beside_the_real_file(tmp_path: Path) -> None:
    real = tmp_path / "real" / "outbox.db"
    link = tmp_path / "links" / "outbox.db"
    real.parent.mkdir()
    link.parent.mkdir()
    link.symlink_to(real)
    box = Outbox(link, "gw")  # buffer.path a symlink: the gateway works on the real file
    box.open()
    box.put([item("alpha", i) for i in range(3)])
    box.close()
    assert not (link.parent / "outbox.db.ledger").exists()

    via_link = buffer_stats(link)
    assert via_link["ledger"]["state"] == "ok"  # not "missing": the ledger is beside `real`
    direct = buffer_stats(real)
    assert via_link["ledger"] == direct["ledger"]
    assert via_link["file_bytes"] == direct["file_bytes"]  # the WAL beside `real` too
