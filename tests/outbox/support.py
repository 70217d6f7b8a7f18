"""Helpers for the outbox damage, disk and permission tests: filling a real outbox,
damaging its files the ways disks and people do, reading it back with the real CLI.

``python -m tests.outbox.support fill-and-kill PATH`` fills an outbox as the gateway
would (some events delivered, then ~1,500 per source with the broker away), prints
what it committed as JSON, and kills itself with SIGKILL: the WAL keeps the tail.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.outbox.stored import stored_payloads
from tests.support import TIDEGATE, write_config
from tidegate.event import new_event
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing
from tidegate.payload import encode_event

SOURCES = ("alpha", "beta")
WAL_HEADER = 32
WAL_FRAME_HEADER = 24


def item(source: str, value: float) -> Outgoing:
    return Outgoing(new_event(source, "x", value), f"t/{source}", 1, False)


@dataclass
class History:
    """What an outbox was given before it was damaged."""

    max_seq: dict[str, int] = field(default_factory=dict)
    """Per source, the highest seq ever committed (published or stored)."""
    undelivered: list[str] = field(default_factory=list)
    """Ids of the committed events no broker acknowledged."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls(**json.loads(text))


def fill(
    path: Path, *, delivered: int = 200, undelivered: int = 1500, per_commit: int = 50
) -> tuple[Outbox, History]:
    """Deliver ``delivered`` events per source, then commit ``undelivered`` more per
    source that stay in the outbox. Returns the open outbox and what it holds."""
    box = Outbox(path, "gw")
    box.open()
    history = History()
    value = 0
    for phase, count in (("delivered", delivered), ("undelivered", undelivered)):
        for _ in range(0, count, per_commit):
            batch = [item(s, value + i) for i in range(per_commit) for s in SOURCES]
            value += per_commit
            box.put(batch)
            if phase == "undelivered":
                history.undelivered += [o.event.id for o in batch]
        if phase == "delivered":
            cursors = [0, 0, 0]
            while rows := box.take(1000, cursors):
                cursors[rows[-1].priority] = rows[-1].id
                box.ack([r.id for r in rows])
            # The deliveries reach the database file: what is damaged later is the tail.
            box.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    history.max_seq = {s: box.last_seq(s) for s in SOURCES}
    return box, history


def abandon(box: Outbox) -> None:
    """What a kill -9 leaves of an open outbox in this process: its descriptors closed
    (the connection, the ledger, the lock: the kernel would do it), nothing written."""
    box.db.close()
    box._db = None
    box._ledger.close()
    box._lock.release()


def copy_outbox(source_dir: Path, target_dir: Path) -> None:
    target_dir.mkdir(parents=True, exist_ok=True)
    for f in source_dir.iterdir():
        if f.is_file():
            shutil.copy2(f, target_dir / f.name)


def stored_ids(path: Path) -> set[str]:
    """Event ids in an outbox file (read through a throwaway copy: reading may checkpoint)."""
    with sqlite3.connect(path) as db:
        return {json.loads(p)["id"] for p in stored_payloads(db)}


def valid_wal_frames(wal: Path) -> tuple[int, int]:
    """(frame size, frames of the current WAL generation): what SQLite would replay,
    before the first frame whose salt does not match (stale frames of an earlier
    generation may follow them in the file)."""
    data = wal.read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    salt = data[16:24]
    frame = WAL_FRAME_HEADER + page_size
    n = 0
    offset = WAL_HEADER
    while offset + frame <= len(data) and data[offset + 8 : offset + 16] == salt:
        n += 1
        offset += frame
    return frame, n


def overwrite(path: Path, offset: int, size: int, byte: int = 0x5A) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(bytes([byte]) * size)


def damage(path: Path, how: str) -> None:
    """Damage a stopped or killed outbox the way the issue found it damaged."""
    wal = Path(f"{path}-wal")
    if how == "truncate_half":
        os.truncate(path, path.stat().st_size // 2)
    elif how == "overwrite_middle":
        overwrite(path, path.stat().st_size // 2 // 4096 * 4096, 4096)
    elif how == "zero_header":
        overwrite(path, 0, 100, 0)
    elif how == "zero_bytes":
        os.truncate(path, 0)
    elif how == "missing":
        path.unlink()
    elif how == "wal_overwrite_middle":
        frame, n = valid_wal_frames(wal)
        overwrite(wal, WAL_HEADER + n // 2 * frame, 4096)
    elif how == "wal_cut_mid_frame":
        frame, n = valid_wal_frames(wal)
        os.truncate(wal, WAL_HEADER + n // 2 * frame + frame // 2)
    else:
        raise ValueError(how)


def buffer_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``tidegate buffer ARGS`` as a user runs it, without a terminal (a prompt reads EOF)."""
    return subprocess.run(
        [*TIDEGATE, "buffer", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def buffer_stdout(*args: str) -> str:
    """``tidegate buffer ARGS``, which must succeed: what it printed."""
    done = buffer_cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def buffer_stats(path: Path) -> dict[str, Any]:
    """``tidegate buffer stats --json`` on the file, as a user would run it."""
    done = buffer_cli("stats", "--json", "--db", str(path))
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def fill_and_kill(path: Path) -> None:
    _, history = fill(path)
    sys.stdout.write(history.to_json())
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def run_and_kill(script: str, path: Path) -> dict[str, Any]:
    """Run ``script`` (``box`` is an open outbox at ``path``, ``out`` a dict) in a real
    process that prints ``out`` as JSON and dies by SIGKILL: the WAL keeps its commits."""
    code = textwrap.dedent(
        """
        import json, os, signal, sys
        from pathlib import Path
        from tests.outbox.support import item
        from tidegate.outbox.store import Outbox
        box = Outbox(Path(sys.argv[1]), "gw")
        box.open()
        out = {}
        """
    ) + textwrap.dedent(script) + textwrap.dedent(
        """
        sys.stdout.write(json.dumps(out))
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    doc: dict[str, Any] = json.loads(_output_of_killed_python("-c", code, str(path)))
    return doc


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def run_fill_and_kill(path: Path) -> History:
    """Fill an outbox in a real process that then dies by SIGKILL."""
    return History.from_json(
        _output_of_killed_python("-m", "tests.outbox.support", "fill-and-kill", str(path))
    )


def _output_of_killed_python(*args: str) -> str:
    """What ``python ARGS`` (run from the repository) printed before it killed itself
    with SIGKILL, as the scripts above do; any other ending fails the test."""
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    return done.stdout


if __name__ == "__main__":
    if sys.argv[1:2] == ["fill-and-kill"]:
        fill_and_kill(Path(sys.argv[2]))


# -- outboxes as older tidegate releases wrote them ----------------------------------------

V2_SCHEMA = """
CREATE TABLE outbox_high (id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL,
    route_id INTEGER NOT NULL, accepted REAL NOT NULL, synced INTEGER NOT NULL,
    boot_id INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE outbox_normal (id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL,
    route_id INTEGER NOT NULL, accepted REAL NOT NULL, synced INTEGER NOT NULL,
    boot_id INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE outbox_low (id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL,
    route_id INTEGER NOT NULL, accepted REAL NOT NULL, synced INTEGER NOT NULL,
    boot_id INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE VIEW outbox AS
    SELECT *, 0 AS priority FROM outbox_high
    UNION ALL SELECT *, 1 AS priority FROM outbox_normal
    UNION ALL SELECT *, 2 AS priority FROM outbox_low;
CREATE TABLE sources (id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE,
    last_seq INTEGER NOT NULL);
CREATE TABLE routes (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, qos INTEGER NOT NULL,
    retain INTEGER NOT NULL, UNIQUE (topic, qos, retain));
CREATE TABLE boots (id INTEGER PRIMARY KEY, boot TEXT NOT NULL UNIQUE);
CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, at REAL NOT NULL, stage TEXT NOT NULL,
    reason TEXT NOT NULL, source TEXT, topic TEXT, payload BLOB);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
PRAGMA user_version = 2;
"""
"""Schema 2, as tidegate wrote it before checksums (gateway/outbox_schema.py at 9db7999)."""

V1_SCHEMA = """
CREATE TABLE outbox (id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL,
    route_id INTEGER NOT NULL, accepted REAL NOT NULL, payload BLOB NOT NULL);
CREATE TABLE sources (id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE,
    last_seq INTEGER NOT NULL);
CREATE TABLE routes (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, qos INTEGER NOT NULL,
    retain INTEGER NOT NULL, UNIQUE (topic, qos, retain));
CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, at REAL NOT NULL, stage TEXT NOT NULL,
    reason TEXT NOT NULL, source TEXT, topic TEXT, payload BLOB);
"""
"""The first outbox layout (user_version 0; gateway/outbox.py at 3786aff)."""


def old_outbox(path: Path, version: int, per_source: int) -> list[bytes]:
    """An outbox as tidegate ``version`` left it (WAL mode, 1 KiB pages), holding
    ``per_source`` undelivered events of each source. Returns their payloads."""
    db = sqlite3.connect(path, isolation_level=None)
    payloads = []
    try:
        db.execute("PRAGMA page_size=1024")
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(V2_SCHEMA if version == 2 else V1_SCHEMA)
        db.execute("BEGIN")
        if version == 2:
            db.execute("INSERT INTO boots (id, boot) VALUES (1, 'an-earlier-boot')")
        row = 0
        for source_id, source in enumerate(SOURCES, 1):
            db.execute(
                "INSERT INTO sources (id, source, last_seq) VALUES (?, ?, ?)",
                (source_id, source, per_source),
            )
            db.execute(
                "INSERT INTO routes (id, topic, qos, retain) VALUES (?, ?, 1, 0)",
                (source_id, f"t/{source}"),
            )
            for seq in range(1, per_source + 1):
                row += 1
                payload = encode_event(new_event(source, "x", seq), seq, "gw")
                payloads.append(payload)
                if version == 2:
                    db.execute(
                        "INSERT INTO outbox_normal VALUES (?, ?, ?, 1.8e9, 1, 1, ?)",
                        (row, source_id, source_id, payload),
                    )
                else:
                    db.execute(
                        "INSERT INTO outbox VALUES (?, ?, ?, 1.8e9, ?)",
                        (row, source_id, source_id, payload),
                    )
        db.execute("COMMIT")
    finally:
        db.close()
    return payloads


# -- small disks -------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(mountpoint: Path, size: str = "3m", options: str = "") -> Iterator[Path]:
    """A real filesystem of ``size`` (tmpfs, with extra mount ``options`` such as
    ``nr_inodes=64``), unmounted afterwards; the test is skipped where mounting is not
    permitted."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0755" + (f",{options}" if options else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs here: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def disk_gateway_config(tmp_path: Path, disk: Path, name: str, sim: str, extra: str = "") -> Path:
    """A gateway whose data directory is on ``disk``, with one simulated driver sending
    the signal ``sim``; ``extra`` adds top-level sections (outputs, buffer limits)."""
    return write_config(
        tmp_path / f"{name}.yaml",
        f"""
gateway: {{id: full, data_dir: {disk / "data"}}}
control: {{socket: {tmp_path / "control.sock"}}}
buffer: {{commit_interval: 20ms, memory_max_events: 1000}}
{extra}
drivers:
  - name: alpha
    type: sim
    signals: [{sim}]
""",
    )


def fill_disk(directory: Path, name: str = "filler") -> Path:
    """Write (append) a file until the filesystem has no block left."""
    filler = directory / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    block = bytes(4096)
    try:
        while True:
            os.write(fd, block)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def status_json(config: Path) -> dict[str, Any] | None:
    """`tidegate status --json`; None while no gateway answers (yet)."""
    done = subprocess.run(
        [*TIDEGATE, "status", "--json", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        assert "no gateway is running" in done.stderr, done.stderr
        return None
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc
