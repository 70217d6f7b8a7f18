"""Unix socket paths of any length.

An AF_UNIX address holds at most 107 bytes, and a data directory deep in a
home folder or a test's temporary folder can be longer. Such a path is
reached through a descriptor of its folder (``/proc/self/fd/N/name``), which
the kernel resolves like the path itself, for ``bind`` and ``connect`` alike.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

MAX_ADDRESS = 107
"""Bytes of a path an AF_UNIX address holds (sun_path is 108, with the NUL)."""


@contextlib.contextmanager
def address(path: Path) -> Iterator[str]:
    """An address for ``path`` that fits AF_UNIX, valid inside the block."""
    if len(os.fsencode(path)) <= MAX_ADDRESS:
        yield str(path)
        return
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


def stream_socket() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)


def bind(sock: socket.socket, path: Path) -> None:
    with address(path) as where:
        sock.bind(where)


def connect(path: Path, timeout: float | None) -> socket.socket:
    """A connected stream socket; OSError (FileNotFoundError, ConnectionRefusedError, …)
    as ``connect`` raises it."""
    sock = stream_socket()
    sock.settimeout(timeout)
    try:
        with address(path) as where:
            sock.connect(where)
    except BaseException:
        sock.close()
        raise
    return sock
