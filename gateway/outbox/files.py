"""Who may read the outbox: its owner only.

Buffered events can be anything a sensor or a rule produced; `tidegate buffer
peek` shows them to whoever can read the file. Outside systemd (whose unit
gives the service ``UMask=0077`` and a ``StateDirectory`` of its own mode,
0750: the group may enter, not read), tidegate therefore makes what it
creates owner-only whatever the umask: each directory it creates 0700, the
outbox and every file beside it (``-wal``, ``-shm``, the ledger, the reserve)
0600. A directory the user chose and that already exists (their home,
``/tmp``) is left as it is; the files in it are owner-only all the same, and an
outbox an older tidegate left readable is made owner-only at the next start.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
COMPANIONS = ("-wal", "-shm")
"""SQLite's own files beside the outbox; it gives them the outbox file's mode when it
creates them, so the outbox file is made owner-only first."""


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents owner-only (only those it creates)."""
    missing = []
    current = directory
    while not os.path.lexists(current):
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, left as it is
        os.chmod(path, DIR_MODE)  # the umask may have taken more than the group's bits


def make_private(path: Path) -> None:
    """Owner-only access to an outbox file and SQLite's files beside it, if they exist."""
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in COMPANIONS)):
        try:
            mode = candidate.stat().st_mode
            if stat.S_IMODE(mode) & 0o077:
                os.chmod(candidate, stat.S_IMODE(mode) & ~0o077 | FILE_MODE)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot make %s owner-only: %s", candidate, exc.strerror)
