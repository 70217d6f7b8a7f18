"""Opening the outbox file, and what to do when it is damaged.

A power cut on an SD card can leave a database SQLite cannot read. tidegate
never crash-loops on it and never deletes it: the damaged file (with its WAL
and shared-memory files) is moved aside under a timestamped name and a new
outbox is created. A 0-byte file where the ledger says events were is moved
aside the same way. How many events that cost, and where ``seq`` continues,
is decided with the ledger (``tidegate.outbox.ledger.reconcile``), which also logs
and counts it. A WAL cut in the middle of a frame is not damage SQLite needs
help with — it ignores the partial frame, losing the transactions in it —
but it is logged here, and the loss is counted against the ledger.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from tidegate.errors import BufferError_
from tidegate.outbox.disk import raise_if_no_space
from tidegate.outbox.files import make_private

log = logging.getLogger(__name__)

WAL_HEADER = 32
WAL_FRAME_HEADER = 24

DAMAGE = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
"""SQLite's words for a file it cannot read as a database. Anything else (locked,
read-only, I/O errors, a full disk) is not damage: the file is left alone."""


class Recreated(NamedTuple):
    """Why the outbox file is a new one, and where the old one went."""

    why: str
    """e.g. "was 0 bytes", "was unreadable (quick_check: …)", "was missing"."""
    where: str | None = None

    @property
    def missing(self) -> bool:
        return self.where is None

    def describe(self) -> str:
        return self.why if self.where is None else f"{self.why}; moved to {self.where}"


class Unusable(sqlite3.DatabaseError):
    """The file opened, but cannot serve as this outbox: move it aside (never delete)."""


def wal_cut_mid_frame(path: Path) -> bool:
    """True if ``<path>-wal`` ends inside a frame (a torn write at power loss)."""
    wal = Path(f"{path}-wal")
    try:
        size = wal.stat().st_size
        with wal.open("rb") as f:
            header = f.read(WAL_HEADER)
    except OSError:
        return False
    if size <= WAL_HEADER or len(header) < WAL_HEADER:
        return False
    page_size: int = struct.unpack(">I", header[8:12])[0]
    if page_size < 512:
        return False
    return (size - WAL_HEADER) % (WAL_FRAME_HEADER + page_size) != 0


def check_empty(path: Path) -> Recreated | None:
    """For an outbox that held events: a missing or 0-byte file is a loss, not a new
    outbox. Moves a 0-byte file (and leftover -wal/-shm files) aside."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm")):
            _move_aside(path)  # a WAL without its database must not be replayed into a new one
        return Recreated("was missing")
    if size:
        return None
    return Recreated("was 0 bytes", str(_move_aside(path)))


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            src.rename(Path(f"{target}{suffix}"))
    make_private(target)  # its events are no one else's business either
    return target


def _try_open(path: Path, configure: Callable[[sqlite3.Connection], None]) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    try:
        configure(db)
        result = db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise Unusable(f"quick_check: {result}")
    except BaseException:
        db.close()
        raise
    return db


def _is_damage(exc: sqlite3.Error) -> bool:
    if isinstance(exc, Unusable):
        return True
    name = getattr(exc, "sqlite_errorname", "")
    return name in DAMAGE or "not a database" in str(exc) or "malformed" in str(exc)


def open_or_recover(
    path: Path, configure: Callable[[sqlite3.Connection], None]
) -> tuple[sqlite3.Connection, Recreated | None]:
    """Open (and configure) the outbox; move a damaged one aside and start anew.

    Returns the connection and, if the file was damaged, why and where it went
    (the caller logs and counts it, with the number of events it held).
    """
    if wal_cut_mid_frame(path):
        log.warning(
            "outbox %s: its WAL ends in the middle of a frame (a write cut short by a "
            "power cut or a full disk); SQLite ignores that frame and keeps everything "
            "before it (any committed events lost with it are counted against the ledger)",
            path,
        )
    try:
        return _try_open(path, configure), None
    except sqlite3.Error as exc:
        if not _is_damage(exc):
            # A full disk (or an upgrade that does not fit): the gateway waits for room.
            raise_if_no_space(path, exc)
            # Locked, read-only, an I/O error: the events in it are fine. Refuse to
            # start (systemd retries) rather than strand them in a moved-aside file.
            raise BufferError_(f"cannot open the outbox {path}: {exc}") from None
        reason = str(exc)
    except OSError as exc:
        raise_if_no_space(path, exc)
        raise BufferError_(f"cannot open the outbox {path}: {exc.strerror}") from None
    try:
        moved = _move_aside(path)
    except OSError as exc:
        raise BufferError_(
            f"the outbox {path} is unreadable ({reason}) and cannot be moved aside: {exc.strerror}"
        ) from None
    try:
        return _try_open(path, configure), Recreated(f"was unreadable ({reason})", str(moved))
    except (sqlite3.Error, OSError) as exc:
        raise_if_no_space(path, exc, "create")
        raise BufferError_(f"cannot create a new outbox {path}: {exc}") from None
