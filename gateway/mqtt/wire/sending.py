"""How far our bytes have got: what the keep-alive reads to tell a slow link from a dead one
(``tidegate.mqtt.wire.client``)."""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios

_TCPI_BYTES_ACKED = 120
"""Where ``struct tcp_info`` has ``tcpi_bytes_acked`` (a __u64, Linux 4.1 and later)."""


def send_state(transport: asyncio.Transport) -> tuple[int | None, int]:
    """Of the bytes written to ``transport``: how many the peer's TCP acknowledged so
    far (Linux's TCP_INFO; None elsewhere), and how many are still on their way (in
    the transport's buffer and the kernel's send queue, SIOCOUTQ; the buffer alone
    elsewhere). A TLS transport hides its own socket transport's buffer; while that
    holds bytes, the kernel's queue is not empty either."""
    queued = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")  # a TLS transport's too: the TCP socket
    if sock is None:
        return None, queued
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    except (OSError, ValueError, AttributeError):  # not Linux; closed meanwhile
        return None, queued
    if not isinstance(info, bytes) or len(info) < _TCPI_BYTES_ACKED + 8:
        return None, queued
    acked: int = struct.unpack_from("=Q", info, _TCPI_BYTES_ACKED)[0]
    return acked, queued + struct.unpack("i", out)[0]
