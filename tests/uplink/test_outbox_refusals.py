"""When the outbox must not start, it says so in one line and changes nothing (issue 9,
second review): a second gateway on the same outbox (also through a symlink), a ledger
that cannot be read or written. ``tidegate buffer`` works next to a running gateway as
before, and a symlinked buffer.path acts on the real file. Real files, real processes."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.outbox.support import buffer_cli, buffer_stats, damage, item, run_and_kill
from tests.support import TIDEGATE, GatewayProcess, wait_until, write_config
from tidegate.errors import BufferError_
from tidegate.outbox.ledger.file import ledger_path
from tidegate.outbox.store import Outbox

ROOT = Path(__file__).resolve().parents[2]


# -- 6. one gateway per outbox ---------------------------------------------------------------


def test_a_second_open_of_one_outbox_is_refused_even_through_a_symlink(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    first = Outbox(db, "gw")
    first.open()
    first.put([item("alpha", 1)])
    (tmp_path / "link.db").symlink_to(db)
    for path in (db, tmp_path / "link.db"):
        with pytest.raises(BufferError_, match=f"another tidegate is using the outbox {db}"):
            Outbox(path, "gw").open()
    assert oct((tmp_path / "o.db.lock").stat().st_mode & 0o777) == "0o600"
    first.put([item("alpha", 2)])
    first.close()
    second = Outbox(db, "gw")
    second.open()  # free again once the first one closed
    second.put([item("alpha", 3)])
    assert second.last_seq("alpha") == 3
    second.close()


def test_a_second_gateway_process_is_refused_and_the_buffer_tools_still_work(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    drivers = """
drivers:
  - name: alpha
    type: sim
    signals: [{name: n, kind: counter, rate: 200}]
"""
    configs = [
        write_config(
            tmp_path / f"gw{n}.yaml",
            f"gateway: {{id: one, data_dir: {data}}}\n"
            f"control: {{socket: {tmp_path / f'control{n}.sock'}}}\n{drivers}",
        )
        for n in (1, 2)
    ]
    db = data / "outbox.db"
    gw = GatewayProcess(configs[0], tmp_path / "gw1.log").start()
    try:
        wait_until(lambda: db.exists() and buffer_stats(db)["depth"] >= 50, 30, "events stored")
        second = subprocess.run(
            [*TIDEGATE, "run", "-c", str(configs[1])],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        (line,) = [x for x in second.stderr.splitlines() if "error" in x]  # one line
        assert f"another tidegate is using the outbox {db}" in line
        # Next to the running gateway: the read-only tools, and the writes, as before.
        for args in (["peek", "-n", "3"], ["export", "--format", "jsonl"]):
            done = buffer_cli(*args, "--db", str(db))
            assert done.returncode == 0 and done.stdout, done
        done = buffer_cli("purge", "--outbox", "--yes", "--db", str(db))
        assert done.returncode == 0 and "purged" in done.stdout, done
        assert gw.process is not None and gw.process.poll() is None
    finally:
        assert gw.stop() == 0, gw.output()
    assert "another tidegate" not in gw.output()


# -- a ledger that cannot be read is not damage -------------------------------------------------


OPEN = """
import sys
from pathlib import Path
from tidegate.errors import BufferError_
from tidegate.outbox.store import Outbox
try:
    Outbox(Path(sys.argv[1]), "gw").open()
except BufferError_ as exc:
    print(exc)
"""
WITHOUT_DAC = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
"""root without the capabilities that let it read any file: permissions apply to it."""


def open_in_a_process(db: Path) -> subprocess.CompletedProcess[str]:
    """Open the outbox in another process, as its owner (root without the capabilities
    that pass over permissions): it prints why the open was refused."""
    return subprocess.run(
        [*(WITHOUT_DAC if os.geteuid() == 0 else []), sys.executable, "-c", OPEN, str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.parametrize("how", ["a directory", "not readable"])
def test_a_ledger_that_cannot_be_read_refuses_the_start_and_changes_nothing(
    tmp_path: Path, how: str
) -> None:
    data = tmp_path / "data"
    db = data / "o.db"
    box = Outbox(db, "gw")
    box.open()
    box.put([item("alpha", i) for i in range(3)])
    box.close()
    ledger = ledger_path(db)
    if how == "a directory":
        kept = ledger.read_bytes()
        ledger.unlink()
        ledger.mkdir()
        with pytest.raises(BufferError_) as refused:
            Outbox(db, "gw").open()
        message = str(refused.value)
        ledger.rmdir()
        ledger.write_bytes(kept)
    else:
        if os.geteuid() == 0 and shutil.which("setpriv") is None:
            pytest.skip("root reads any file; setpriv is needed to take that away")
        ledger.chmod(0)  # its owner cannot read it (a wrong chmod, a wrong restore)
        done = open_in_a_process(db)
        assert done.returncode == 0, done.stderr
        message = done.stdout.strip()
        ledger.chmod(0o600)
    assert message.startswith(f"cannot read the outbox ledger {ledger}: ")
    assert "\n" not in message
    # Nothing was counted or skipped: the next start with a readable ledger just goes on.
    again = Outbox(db, "gw")
    again.open()
    assert "ledger_damaged" not in again.stats.drops
    again.put([item("alpha", 9)])
    assert again.last_seq("alpha") == 4
    again.close()


def test_a_ledger_that_cannot_be_written_refuses_the_start_before_counting_anything(
    tmp_path: Path,
) -> None:
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("root writes any file; setpriv is needed to take that away")
    db = tmp_path / "o.db"
    run_and_kill('box.put([item("alpha", i) for i in range(100)])', db)
    damage(db, "wal_cut_mid_frame")  # a loss the next start would count
    ledger_path(db).chmod(0o400)
    done = open_in_a_process(db)
    assert done.stdout.startswith(f"cannot write the outbox ledger {ledger_path(db)}: "), done
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    assert "lost_in_recovery" not in counters  # counted once, by the start that can write
    ledger_path(db).chmod(0o600)
    box = Outbox(db, "gw")
    box.open()
    lost = box.stats.drops["lost_in_recovery"]
    assert 0 < lost == 100 - box.stats.depth
    box.close()


# -- a symlinked buffer.path -------------------------------------------------------------------


def test_a_symlinked_outbox_path_acts_on_the_real_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real_dir = tmp_path / "disk"
    real_dir.mkdir()
    link = tmp_path / "outbox.db"
    link.symlink_to(real_dir / "o.db")
    box = Outbox(link, "gw")
    box.open()
    box.put([item("alpha", i) for i in range(10)])
    box.close()
    assert ledger_path(real_dir / "o.db").exists() and not ledger_path(link).exists()
    damage(real_dir / "o.db", "zero_bytes")
    again = Outbox(link, "gw")
    with caplog.at_level(logging.WARNING):
        again.open()
    assert link.is_symlink() and link.resolve() == real_dir / "o.db"  # the link stays
    (aside,) = real_dir.glob("o.db.corrupt-*")  # the real file was moved, beside itself
    assert aside.stat().st_size == 0
    assert again.stats.drops["lost_in_recovery"] == 10
    again.put([item("alpha", 1)])
    assert again.last_seq("alpha") > 10
    again.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "outbox.db"]
