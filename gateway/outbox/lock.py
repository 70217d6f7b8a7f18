"""One gateway per outbox: an exclusive lock held for as long as the outbox is open.

Two gateways on one file (the service plus a ``tidegate run`` started by hand
with another control socket) would hand out the same seqs and overwrite each
other's ledger. SQLite's own locks only serialise transactions; they do not
stop that. The gateway therefore holds ``flock(LOCK_EX)`` on ``<outbox>.lock``
(created owner-only, never deleted: deleting a lock file lets two holders lock
two different files) from the start of ``open`` to the end of ``close``; a
second gateway is refused with one line naming the path. The kernel drops the
lock when the process dies, however it dies: a stale lock cannot block a start.

``tidegate buffer`` does not take this lock: its read-only tools and its
writes (replay, purge: short SQLite transactions the gateway notices) work
next to a running gateway, as before. Only ``gateway_running`` looks at it,
without waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from tidegate.errors import BufferError_
from tidegate.outbox.disk import raise_if_no_space
from tidegate.outbox.files import FILE_MODE

SUFFIX = ".lock"
WAIT = 2.0
"""How long a start waits for the lock: ``tidegate buffer`` may hold it shared for
the few milliseconds it takes to bring a stopped gateway's ledger up to date."""


def lock_path(outbox: Path) -> Path:
    return outbox.with_name(outbox.name + SUFFIX)


def _open(path: Path) -> int:
    # Read-only is enough for flock, and works on a lock file someone else created.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    with contextlib.suppress(OSError):  # not ours to change: it locks all the same
        os.fchmod(fd, FILE_MODE)  # whatever the umask
    return fd


class OutboxLock:
    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.path = lock_path(outbox)
        self._fd: int | None = None

    def acquire(self, wait: float = WAIT) -> None:
        """Take the lock, or raise BufferError_ (one line) if another process has it."""
        try:
            fd = _open(self.path)
        except OSError as exc:
            # No room (no free inode, say) is a full disk like any other: the gateway
            # waits for room (OutboxNoSpace) instead of exiting into a restart loop.
            raise_if_no_space(self.outbox, exc, "create the lock file of")
            raise BufferError_(f"cannot create the lock file {self.path}: {exc.strerror}") from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise BufferError_(
                        f"another tidegate is using the outbox {self.outbox} (it holds "
                        f"{self.path}); stop it first, or give this one another buffer.path"
                    ) from None
                time.sleep(0.02)  # a lock held for milliseconds (tidegate buffer)
            except OSError as exc:
                os.close(fd)
                raise BufferError_(f"cannot lock {self.path}: {exc.strerror}") from None
        self.release()
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the lock
            self._fd = None


@contextlib.contextmanager
def unless_running(outbox: Path) -> Iterator[bool]:
    """Hold the lock shared, without waiting, for the block; yields False (and holds
    nothing) if a gateway has the outbox open. No lock file: no gateway ran since this
    release (it is never created here: one made by root would lock the service out)."""
    try:
        fd = os.open(lock_path(outbox), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
