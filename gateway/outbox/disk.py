"""The disk under the outbox: how much it may hold, and the room it always keeps.

The outbox's bound (``buffer.max_bytes``) is also held to what the disk can
take, re-checked at every commit (other files grow too) and counting what the
payloads do not show: the WAL (up to its checkpoint size plus one commit),
pages the database file will grow by when the WAL is checkpointed, and the
reserve below. ``drop_oldest`` then drops before the disk is full, not after.

The reserve is a preallocated file beside the outbox (``<outbox>.reserve``, up
to 1 MiB, less on a small disk). When SQLite says the disk is really full, all
of it but its last 64 KiB is given back to the filesystem, so that the writes
which make room — deleting delivered events, dropping the oldest,
checkpointing — can proceed; the last 64 KiB is kept for the next start, which
releases it before opening the file if the disk is still full (even reading
the outbox needs SQLite's 32 KiB shared-memory file). The reserve is made
whole again once the disk has room for it beyond what the WAL may need. On a
small disk the WAL is checkpointed sooner (``wal_autocheckpoint``) and cut back
to its budget (``journal_size_limit``).
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tidegate.errors import BufferError_

log = logging.getLogger(__name__)

PAGE = 1024
"""The outbox's page size (``tidegate.outbox.migrate``)."""
FRAME = PAGE + 24
"""A WAL frame: one page and its header."""
SUFFIX = ".reserve"
MAX_RESERVE = 1024 * 1024
MIN_RESERVE = 128 * 1024
START_RESERVE = 64 * 1024
"""The part of the reserve only a start releases: SQLite's shared-memory file (32 KiB)
and the first WAL frames of an open."""
FILE_MODE = 0o600
FACTOR = 1.25
"""Disk bytes per counted byte (payload + ROW_OVERHEAD): b-tree pages are not full,
and interior pages, sources, routes and counters take room too. Measured on the file
once it holds enough to tell, kept within FACTOR_RANGE."""
FACTOR_RANGE = (1.0, 2.0)
CHECK_INTERVAL = 0.5
"""Seconds between looks at the filesystem while it has ample room."""


def reserve_path(outbox: Path) -> Path:
    return outbox.with_name(outbox.name + SUFFIX)


def _allocated(path: str) -> int:
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


@dataclass(frozen=True, slots=True)
class DiskPlan:
    """Sizes chosen from the filesystem's size (at open)."""

    reserve: int
    """Bytes of the reserve file."""
    margin: int
    """Bytes never counted as room (metadata, the shared-memory file, the ledger)."""
    wal_pages: int
    """``wal_autocheckpoint``."""
    wal_limit: int
    """``journal_size_limit``: the WAL is cut back to this after a checkpoint."""

    @classmethod
    def for_size(cls, total: int) -> DiskPlan:
        reserve = max(MIN_RESERVE, min(MAX_RESERVE, total // 32)) // 4096 * 4096
        margin = max(64 * 1024, min(8 * 1024 * 1024, total // 64))
        wal_pages = max(32, min(1000, total // 16 // PAGE))
        return cls(reserve, margin, wal_pages, min(8 * 1024 * 1024, max(total // 8, 256 * 1024)))


class Disk:
    """The filesystem under one outbox: room for events, and the reserve."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.reserve = reserve_path(outbox)
        total = self._statvfs()[0] or 1 << 40
        self.plan = DiskPlan.for_size(total)
        self.dead_letter_room = total // 8
        """The most the dead letters may take on this disk (``dead_letter_max_bytes`` may
        be more than a small disk holds)."""
        self.factor = FACTOR
        self.binding = False
        """The disk, not ``max_bytes``, sets the bound now (logged when it starts)."""
        self._spare = 0
        """Free bytes beyond what the WAL, a checkpoint and the margin need (last room())."""
        self._db_path = str(outbox)
        self._wal_path = f"{outbox}-wal"
        self._reserve_whole = False
        """Whether the reserve was whole when last looked at (by ``room`` or here)."""
        self.checked_at = -1e9
        """When ``room`` last looked at the filesystem (monotonic)."""
        self.room_left = 0
        """What ``room`` found then, less what was committed since (an estimate)."""

    def _statvfs(self) -> tuple[int, int]:
        """(filesystem size, bytes free for us); (0, 0) if it cannot be read."""
        try:
            st = os.statvfs(self.outbox.parent)
        except OSError:
            return 0, 0
        free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
        return st.f_blocks * st.f_frsize, free

    def free(self) -> int:
        return self._statvfs()[1]

    # -- the reserve ---------------------------------------------------------------------

    def _reserve_size(self) -> int:
        try:
            return self.reserve.stat().st_size
        except OSError:
            return 0

    @property
    def has_reserve(self) -> bool:
        """As last looked at: cheap enough to ask at every commit."""
        return self._reserve_whole

    def release_if_full(self, exc: Exception) -> bool:
        """After SQLite failed with ``exc``: if the disk is really full (not a limit
        SQLite was given, nor another error on a disk with room), release the reserve
        but its last START_RESERVE bytes. True if that made room."""
        size = self._reserve_size()
        if size <= START_RESERVE or self.free() >= self.plan.margin + self.plan.reserve:
            return False
        self._reserve_whole = False
        try:
            os.truncate(self.reserve, START_RESERVE)
        except OSError as exc2:
            log.error("cannot shrink the outbox's reserve %s: %s", self.reserve, exc2.strerror)
            return False
        log.warning(
            "the disk under %s is full (%s): released %d kB of the outbox's reserve so that "
            "deleting delivered events and dropping the oldest can proceed",
            self.outbox,
            exc,
            (size - START_RESERVE) // 1024,
        )
        return True

    def release_for_start(self) -> None:
        """Before opening: a start must never fail for want of the few blocks an open
        needs (SQLite's shared-memory file, the first WAL frames)."""
        if self.free() >= self.plan.margin + START_RESERVE:
            return
        try:
            self.reserve.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("cannot remove the outbox's reserve %s: %s", self.reserve, exc.strerror)
            return
        log.warning("the disk under %s is full: released the outbox's reserve", self.outbox)

    def ensure_reserve(self) -> None:
        """Make the reserve whole if the filesystem has room for it beyond what the WAL
        may still need (as of the last ``room``). The database file never shrinks, so
        on a disk the outbox filled this waits for a restart (which frees the WAL) or
        for other files to shrink: the bound keeps the WAL's room meanwhile."""
        size = self._reserve_size()
        self._reserve_whole = size >= self.plan.reserve
        if self._reserve_whole or self._spare < self.plan.reserve - size:
            return
        try:
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            try:
                os.fchmod(fd, FILE_MODE)
                block = bytes(64 * 1024)
                # Written, not fallocated: blocks really allocated, whatever the filesystem.
                for offset in range(size, self.plan.reserve, len(block)):
                    os.pwrite(fd, block[: self.plan.reserve - offset], offset)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._reserve_whole = True
        except OSError as exc:
            log.debug("cannot make the outbox's reserve whole yet: %s", exc.strerror)

    # -- room ----------------------------------------------------------------------------

    def ack_chunk(self, row_bytes: float) -> int:
        """Rows one delete transaction may take: its WAL frames (a deleted row costs
        about what it took) stay within one checkpoint's worth."""
        return max(100, int(self.plan.wal_pages * PAGE / max(64.0, row_bytes * self.factor)))

    def room(self, page_count: int, freelist: int, wal_txn: int) -> int | None:
        """Bytes the database may still grow by, as the disk stands: free space (plus
        free pages inside the file), less what the WAL (up to a checkpoint, plus one
        transaction: a commit or a delete chunk), a checkpoint and the margin will
        need. None if the filesystem cannot be read."""
        total, free = self._statvfs()
        if not total:
            return None
        db = _allocated(self._db_path)
        wal = _allocated(self._wal_path)
        self._reserve_whole = self._reserve_size() >= self.plan.reserve
        # Pages that live only in the WAL land in the database file at the next checkpoint.
        growth = max(0, page_count * PAGE - db)
        checkpoint = self.plan.wal_pages * FRAME
        wal_budget = checkpoint + max(checkpoint, wal_txn)
        wal_headroom = max(0, wal_budget - wal)
        self._spare = free - growth - wal_headroom - self.plan.margin
        room = self._spare + freelist * PAGE
        self.room_left = room
        return room

    def can_skip_check(self, now: float, txn: int) -> bool:
        """Between two looks at the filesystem (at most CHECK_INTERVAL apart), while
        the room last found minus what was committed since is ample: the bound stands.
        Close to full, every commit looks (a few stat calls)."""
        if now - self.checked_at >= CHECK_INTERVAL or self.room_left < 8 * txn + self.plan.margin:
            return False
        self.room_left -= txn
        return True

    def measure(self, page_count: int, freelist: int, counted: int) -> None:
        """Learn the disk bytes per counted byte from the file itself."""
        if counted >= 256 * 1024:
            used = (page_count - freelist) * PAGE
            low, high = FACTOR_RANGE
            self.factor = max(low, min(high, used / counted))

    def bound(self, configured: int, counted: int, room: int | None) -> int:
        """The bound in force: ``configured``, or less if the disk holds less."""
        if room is None:
            return configured
        disk = counted + int(room / self.factor)
        binding = disk < configured
        if binding and not self.binding:
            log.warning(
                "buffer.max_bytes is %d but the disk under %s has room for about %d "
                "(the WAL, a reserve and a margin included); using that bound",
                configured,
                self.outbox,
                max(0, disk),
            )
        self.binding = binding
        return max(0, min(configured, disk))


# -- a start on a full disk ------------------------------------------------------------


class OutboxNoSpace(BufferError_):
    """The outbox cannot be opened (or upgraded) for lack of disk space. Not a reason
    to exit: the gateway holds events in memory and opens it once there is room."""


NO_ROOM = START_RESERVE
"""Free bytes below which an I/O error while opening means the disk is full: an open
needs SQLite's 32 KiB shared-memory file and the first WAL frames."""


def free_bytes(directory: Path) -> int | None:
    """Bytes the filesystem under ``directory`` still gives us; None if unknown."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize


def _mount_point(path: Path) -> Path:
    """The filesystem's mount point, for a message a user can act on."""
    path = path.absolute()
    try:
        device = path.stat().st_dev
        while path.parent != path and path.parent.stat().st_dev == device:
            path = path.parent
    except OSError:
        pass
    return path


UPGRADE_COPY = 3.3
"""Free bytes per byte of the file that an upgrade copying every row needs: the copy
and the freed pages in the WAL (about 2.1x, one transaction), then the file growing
by the copy when the WAL is checkpointed (measured: 3.0-3.2x)."""


def ensure_room_to_copy(outbox: Path, size: int) -> None:
    """Before an upgrade that copies the whole file (``size`` bytes): OutboxNoSpace if
    the disk cannot hold it. Tried anyway, it would either fail (and be tried again,
    in vain, at every start) or commit and leave a WAL that no checkpoint has the room
    to move into the file: a disk the outbox filled for good."""
    free = free_bytes(outbox.parent)
    need = int(size * UPGRADE_COPY) + NO_ROOM
    if free is not None and free < need:
        raise OutboxNoSpace(
            f"cannot upgrade the outbox {outbox} in place: no space left on "
            f"{_mount_point(outbox.parent)} (the upgrade needs about {need // 1024} KiB "
            f"free while it runs; {free // 1024} KiB are)"
        )


def raise_if_no_space(outbox: Path, exc: BaseException, doing: str = "open") -> None:
    """Raise OutboxNoSpace if ``exc``, met while opening ``outbox``, means the disk is
    full: SQLite's "database or disk is full", ENOSPC, or an I/O error while the
    filesystem has (next to) no free blocks (SQLite then cannot make its shared-memory
    file, and only says "disk I/O error"). Anything else is left to the caller."""
    directory = outbox.parent
    free = free_bytes(directory)
    if isinstance(exc, OSError):
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        detail = exc.strerror or str(exc)
    elif isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "")
        detail = str(exc)
        full = name == "SQLITE_FULL" or "database or disk is full" in detail
        if not full and (name.startswith("SQLITE_IOERR") or "disk I/O error" in detail):
            full = free is not None and free < NO_ROOM
    else:
        return
    if full:
        where = _mount_point(directory)
        raise OutboxNoSpace(
            f"cannot {doing} the outbox {outbox}: no space left on {where} "
            f"({detail}; {'?' if free is None else free // 1024} KiB free now)"
        ) from None
