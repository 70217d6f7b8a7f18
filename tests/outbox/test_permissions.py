"""Buffered events are the owner's alone (issue 9): outside systemd, with a permissive
umask, what tidegate creates is owner-only — directories 0700, the outbox and every
file beside it 0600 — and no other local user can read the events."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.outbox.support import buffer_stdout
from tests.support import GatewayProcess, wait_until, write_config

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every local user may enter (pytest's own temp dirs are 0700)."""
    with tempfile.TemporaryDirectory(prefix="tidegate-perm-") as name:
        path = Path(name)
        os.chmod(path, 0o755)  # noqa: S103 - what a shared directory (/tmp, a home) is like
        yield path


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual default: files 0644, directories 0755
    try:
        yield
    finally:
        os.umask(previous)


def all_exist(files: list[Path]) -> bool:
    return all(f.exists() for f in files)


def run_once(base: Path, data_dir: Path) -> None:
    """A real gateway that commits some events and stops cleanly."""
    config = write_config(
        base / "gw.yaml",
        f"""
gateway: {{id: perm, data_dir: {data_dir}}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: 1000, count: 100}}]
""",
    )
    gw = GatewayProcess(config, base / "gw.log").start()
    try:
        # While it runs: the outbox, its WAL, its shared memory, the ledger, the reserve.
        for group in (("", "-wal", "-shm"), (".ledger", ".reserve")):
            files = [data_dir / f"outbox.db{suffix}" for suffix in group]
            wait_until(partial(all_exist, files), 30, f"the files {group}")
            for f in files:
                assert mode(f) == 0o600, f
    finally:
        assert gw.stop() == 0, gw.output()


def _become_nobody() -> None:
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def others_can_read(path: Path) -> bool:
    """Can another local user (nobody) read ``path``? Asked of a real process."""
    done = subprocess.run(
        ["cat", str(path)],
        capture_output=True,
        check=False,
        preexec_fn=_become_nobody,
    )
    return done.returncode == 0


@pytest.mark.usefixtures("umask_022")
def test_what_tidegate_creates_is_owner_only_whatever_the_umask(shared_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to ask as another user")
    data_dir = shared_dir / "var" / "tidegate"  # neither exists: tidegate creates both
    run_once(shared_dir, data_dir)
    assert mode(data_dir) == 0o700
    assert mode(data_dir.parent) == 0o700
    assert mode(shared_dir) == 0o755  # the directory that existed is left as it was
    for f in data_dir.iterdir():
        assert mode(f) == 0o600, f
    assert not others_can_read(data_dir / "outbox.db")


@pytest.mark.usefixtures("umask_022")
def test_an_existing_directory_is_left_alone_and_old_readable_files_are_fixed(
    shared_dir: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to ask as another user")
    run_once(shared_dir, shared_dir)  # the user chose an existing directory
    db = shared_dir / "outbox.db"
    os.chmod(db, 0o644)  # as an older tidegate left it
    assert others_can_read(db)
    run_once(shared_dir, shared_dir)
    assert mode(shared_dir) == 0o755
    assert mode(db) == 0o600
    assert not others_can_read(db)


@pytest.mark.usefixtures("umask_022")
def test_what_the_buffer_tools_write_is_owner_only(shared_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to ask as another user")
    data_dir = shared_dir / "data"
    run_once(shared_dir, data_dir)
    db = str(data_dir / "outbox.db")
    exports = [shared_dir / "events.jsonl", shared_dir / "events.csv", shared_dir / "old.jsonl"]
    exports[2].write_text("an earlier export, left readable\n")
    assert mode(exports[2]) == 0o644
    buffer_stdout("export", "-f", "jsonl", "-o", str(exports[0]), "--db", db)
    buffer_stdout("export", "-f", "csv", "-o", str(exports[1]), "--db", db)
    buffer_stdout("export", "-f", "jsonl", "-o", str(exports[2]), "--db", db)
    for export in exports:
        assert mode(export) == 0o600, export
        assert not others_can_read(export)
    assert exports[0].read_text().count("\n") == exports[1].read_text().count("\n") - 1
    # The readers and writers leave nothing readable beside the outbox either.
    buffer_stdout("stats", "--db", db)
    buffer_stdout("peek", "--db", db)
    buffer_stdout("replay", "--yes", "--db", db)
    buffer_stdout("purge", "--all", "--yes", "--db", db)
    for f in data_dir.iterdir():
        assert mode(f) == 0o600, f
