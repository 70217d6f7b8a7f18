"""The ledger: what the outbox must remember outside its own SQLite file.

``<outbox>.ledger`` is a small file beside the outbox. It exists so that a
damaged, truncated or deleted outbox can never make ``seq`` repeat, and so
that the number of events such damage cost is known and reported:

- ``reserved`` per source: no seq above it was ever used. Before a commit
  uses a seq above the mark, the mark is raised by a block (10,000, more for
  fast sources) and the ledger is made durable (``fdatasync``). That is the
  only fsync of normal operation, once per block. After any loss of the
  outbox or of its tail, each source continues above its mark.
- what the outbox looked like after its last commit (not made durable:
  rewritten in place after every commit; the page cache keeps it across a
  ``kill -9``, a power cut may leave an older copy): events accepted in
  total, undelivered depth, the last committed seq per source, every
  persistent counter (drops, losses reported), memory drops not yet
  committed, delivered ids whose delete failed, and which rows were
  undelivered (``Undelivered``: per priority class the lowest undelivered id,
  the ids deleted above it, and the next id), so that a file that lost its
  last commits is charged exactly with the undelivered events it no longer
  has, never with delivered ones.
- ``outbox_id``: the random id stored in the outbox file it describes (a
  file put in its place is recognised as another outbox).
- ``clean``: the gateway closed the outbox; ``boot``: the kernel boot that
  last opened it (a different boot without a clean close means a power cut
  or a crash of the machine, after which the copies above may be stale).

Layout: two slots of equal size, written alternately; each holds a header
(magic, generation, length, CRC32) and the state as JSON. A torn write can
only damage the slot being written; the reader takes the valid slot with the
highest generation. A durable write puts the new state in both slots, each
followed by ``fdatasync``, so an older reservation can never come back. The
file is preallocated (written in full when created): rewriting it in place
needs no new blocks, so it works on a full disk. It only grows (atomically,
by rename) when the state no longer fits a slot.

Every commit, every durable write, and other rewrites at most once a second
first check (``fstat`` against ``stat`` of the path: two system calls) that
the open file is still the one at the path: a ledger
deleted or replaced while the gateway runs is written again, durably, from
the gateway's state, and this is logged. A ledger that exists but cannot be
read (permissions, an I/O error) is not damage: the gateway refuses to start
(``unreadable``) instead of skipping seqs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Literal

import orjson

from tidegate.outbox.ledger.state import (
    MAX_HOLES,
    MAX_UNDELETED_RANGES,
    LedgerState,
    Undelivered,
)

__all__ = [
    "MAX_BLOCK",
    "MAX_HOLES",
    "MAX_UNDELETED_RANGES",
    "AdminNote",
    "Ledger",
    "LedgerState",
    "LoadStatus",
    "Undelivered",
    "ledger_path",
    "read_ledger",
]

log = logging.getLogger(__name__)

SUFFIX = ".ledger"
MAGIC = b"TGL1"
HEADER = struct.Struct("<4sQII")
"""magic, generation, body length, CRC32 of (generation, length, body)."""
MIN_SLOT = 4096
FILE_MODE = 0o600

BLOCK = 10_000
"""Seqs reserved at a time per source (one fsync per block)."""
MAX_BLOCK = 1_000_000
"""The largest block (a source that uses a block within FAST_BLOCK seconds gets a
doubled one): also the margin added to the file's marks when the ledger is lost."""
FAST_BLOCK = 60.0
CHECK_EVERY = 1.0
"""Seconds between checks that the ledger file is still there, for rewrites that are not
commits (every commit checks)."""


AdminNote = Literal[
    "updated",
    "gateway running",
    "no ledger",
    "ledger unreadable",
    "file behind",
    "another outbox",
    "failed",
]
"""What ``note_admin_change`` did."""

LoadStatus = Literal["missing", "ok", "damaged", "unreadable"]


def ledger_path(outbox: Path) -> Path:
    return outbox.with_name(outbox.name + SUFFIX)


def _slot(state: LedgerState, generation: int, size: int, *, pad: bool = True) -> bytes:
    """A slot's bytes; ``pad``: filled to ``size`` (a new file: its blocks allocated).
    Rewriting in place needs only the header and body: what follows is never read."""
    body = state.to_json()
    crc = zlib.crc32(body, zlib.crc32(struct.pack("<QI", generation, len(body))))
    data = HEADER.pack(MAGIC, generation, len(body), crc) + body
    if len(data) > size:
        raise _TooBig
    return data + bytes(size - len(data)) if pad else data


def _parse(slot: bytes) -> tuple[int, LedgerState] | None:
    if len(slot) < HEADER.size:
        return None
    magic, generation, length, crc = HEADER.unpack_from(slot)
    body = slot[HEADER.size : HEADER.size + length]
    if magic != MAGIC or len(body) != length:
        return None
    if zlib.crc32(body, zlib.crc32(struct.pack("<QI", generation, length))) != crc:
        return None
    try:
        return generation, LedgerState.from_json(body)
    except (ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError):
        return None


def _slot_size(state: LedgerState) -> int:
    need = HEADER.size + len(state.to_json())
    return max(MIN_SLOT, -(-2 * need // 4096) * 4096)  # room to grow before the next resize


class _TooBig(Exception):
    """The state no longer fits a slot."""


def read_ledger(path: Path) -> tuple[LoadStatus, LedgerState | None]:
    """Read a ledger without keeping it open (``tidegate buffer stats`` does this)."""
    status, state, _ = _read(path)
    return status, state


def _read(path: Path) -> tuple[LoadStatus, LedgerState | None, str]:
    """The newest valid slot; the third value says why a file could not be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "missing", None, ""
    except OSError as exc:
        # Permissions, an I/O error, a directory: not damage; the bytes may be fine.
        return "unreadable", None, exc.strerror or str(exc)
    half = len(data) // 2
    best: tuple[int, LedgerState] | None = None
    if half >= HEADER.size:
        for slot in (data[:half], data[half : 2 * half]):
            parsed = _parse(slot)
            if parsed is not None and (best is None or parsed[0] > best[0]):
                best = parsed
    if best is None:
        return "damaged", None, ""
    return "ok", best[1], ""


class Ledger:
    """The open ledger file of one outbox: its state, written in place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = LedgerState()
        self._fd: int | None = None
        self._generation = 0
        self._size = 0
        self._blocks: dict[str, tuple[int, float]] = {}
        """Per source: the last block size reserved and when (monotonic)."""
        self._failing = False
        self._checked_at = 0.0
        self.error = ""
        """Why ``load`` found the file unreadable."""

    def load(self) -> LoadStatus:
        """Read the file (if any); on success the state is the newest valid slot."""
        status, state, self.error = _read(self.path)
        if state is not None:
            self.state = state
        return status

    def create(self, state: LedgerState) -> None:
        """Write a fresh ledger holding ``state`` (atomically: a new file, renamed)."""
        self.state = state
        self._replace(_slot_size(state))

    def open(self) -> None:
        """Open the existing file for rewriting in place (after ``load`` said ok)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            os.fchmod(fd, FILE_MODE)
            size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        self.close()
        self._fd, self._size = fd, size // 2
        # Continue above whatever generation is there, so the newest slot stays newest.
        self._generation = max(self._generations()) if self._size else 0

    def _generations(self) -> list[int]:
        assert self._fd is not None
        found = [0]
        for i in (0, 1):
            parsed = _parse(os.pread(self._fd, self._size, i * self._size))
            if parsed is not None:
                found.append(parsed[0])
        return found

    def _replace(self, slot_size: int) -> None:
        """A new file with both slots holding the state; durable before it replaces the old."""
        tmp = self.path.with_name(f"{self.path.name}.new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask
            generation = self._generation + 1
            data = _slot(self.state, generation, slot_size) + _slot(
                self.state, generation + 1, slot_size
            )
            os.pwrite(fd, data, 0)
            os.fsync(fd)
            os.rename(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self.close()
        self._fd, self._size, self._generation = fd, slot_size, generation + 1

    def write(self, *, durable: bool = False) -> None:
        """Store the state. ``durable``: in both slots, each synced to the disk, before
        returning (raises OSError if that fails). Otherwise one slot, in the page cache
        (a failure is logged once and the next write tries again)."""
        try:
            self._write(durable)
        except OSError as exc:
            if durable:
                raise
            if not self._failing:
                log.error("cannot update the outbox ledger %s: %s", self.path, exc.strerror)
                self._failing = True
            return
        if self._failing:
            log.warning("the outbox ledger %s is written again", self.path)
            self._failing = False

    def _write(self, durable: bool) -> None:
        if self._fd is None:
            raise OSError(9, "the ledger is not open")
        # Every commit checks first (``verify``); other rewrites (acks) at most every
        # CHECK_EVERY seconds, and every durable one.
        if (durable or time.monotonic() - self._checked_at >= CHECK_EVERY) and (
            self.check_replaced()
        ):
            return
        try:
            for _ in range(2 if durable else 1):
                generation = self._generation + 1
                os.pwrite(
                    self._fd,
                    _slot(self.state, generation, self._size, pad=False),
                    generation % 2 * self._size,
                )
                self._generation = generation
                if durable:
                    os.fdatasync(self._fd)
        except _TooBig:
            self._replace(_slot_size(self.state))

    def fits(self) -> bool:
        """Whether the state fits the open file's slots (a write needs no new file)."""
        try:
            _slot(self.state, 0, self._size, pad=False)
        except _TooBig:
            return False
        return self._fd is not None

    def verify(self) -> None:
        """``check_replaced``, a failure logged (once) rather than raised."""
        try:
            self.check_replaced()
        except OSError as exc:
            if not self._failing:
                log.error("cannot write the outbox ledger %s again: %s", self.path, exc.strerror)
                self._failing = True

    def check_replaced(self) -> bool:
        """If the file at the path is no longer the one open here (deleted, or another
        put in its place), write it again, durably, from the state. True if it did.
        Two system calls: done before every rewrite and every commit."""
        if self._fd is None:
            return False
        self._checked_at = time.monotonic()
        mine = os.fstat(self._fd)
        try:
            there = os.stat(self.path)
        except FileNotFoundError:
            there = None
        same = there is not None and (there.st_ino, there.st_dev) == (mine.st_ino, mine.st_dev)
        if same and mine.st_nlink:
            return False
        what = "deleted" if there is None else "replaced by another file"
        self._replace(_slot_size(self.state))  # OSError: the caller's to report
        log.warning(
            "the outbox ledger %s was %s while the gateway ran: written again from the "
            "gateway's state",
            self.path,
            what,
        )
        return True

    # -- seq reservations --------------------------------------------------------------

    def needs_reservation(self, seqs: dict[str, int]) -> bool:
        reserved = self.state.reserved
        return any(seq > reserved.get(source, 0) for source, seq in seqs.items())

    def reserve(self, seqs: dict[str, int]) -> None:
        """Raise the marks so every seq in ``seqs`` is covered, durably (OSError if not:
        the marks are then as they were, and no seq above them may be used)."""
        reserved = self.state.reserved
        before = dict(reserved)
        now = time.monotonic()
        for source, seq in seqs.items():
            if seq <= reserved.get(source, 0):
                continue
            block, at = self._blocks.get(source, (BLOCK, now - FAST_BLOCK))
            # A source that used its last block quickly gets a larger one: the fsync
            # stays rare at any rate; a slow one goes back to the normal block.
            block = min(block * 2, MAX_BLOCK) if now - at < FAST_BLOCK else BLOCK
            self._blocks[source] = (block, now)
            reserved[source] = seq + block
        try:
            self.write(durable=True)
        except OSError:
            reserved.clear()
            reserved.update(before)
            raise

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
