"""What every client of ``./dev bench mqtt_clients`` shares: the message, the window, the meter.

A client is two functions, ``publish(port, messages, meter)`` and
``receive(port, messages, session, meter)`` (only the first for a client that does
not subscribe: ``Client.receives``); each connects, calls ``meter.start()``,
does its work, and returns ``meter.stop(messages)``. Publishing is counted at
PUBACK; receiving ends when the last of the session's messages was handed to the
application (every client here acknowledges QoS 1 before or right after that).
"""

from __future__ import annotations

import resource
import time
from typing import NamedTuple

TOPIC = "tidegate/bench/fast/power"
"""The topic the full-path bench's gateway publishes one of its signals to."""
PAYLOAD = (
    b'{"id":"0193a1f2-7c4e-7d21-9b3a-5f6e7d8c9b0a","source":"fast","name":"power",'
    b'"value":1234.5,"unit":"W","time":"2026-12-02T11:06:52.123456Z","seq":123456,'
    b'"tags":{"site":"bench"}}'
)
"""About the size of one tidegate event on the wire (~175 B)."""
WINDOW = 200
"""QoS 1 messages in flight, as the gateway's send window."""
REFILL = WINDOW // 2
"""Callback-driven clients top the window up once this many are acknowledged (as the
gateway's publisher and bench/_paho_bare.py do); awaiting clients keep WINDOW
publishes awaiting at all times."""


FENCE_TOPIC = "tidegate/bench/fence"
"""After a receive row's measurement, every client makes one QoS 1 round trip (a
PUBLISH here, or a SUBSCRIBE): Mosquitto handles a connection's packets in order, so
its answer means it has read every PUBACK before it. Without it, a client that
gathers its PUBACKs can exit with them still unread by the broker, and the check that
follows (bench/_client_feed.py) would find them missing."""


def recv_topic(session: str) -> str:
    """Each receive session has its own topic, so filling one queues nothing for another."""
    return f"tidegate/bench/recv/{session}"


class Meter:
    """Wall time and this process's CPU (all threads) between ``start`` and ``stop``."""

    def __init__(self) -> None:
        self.cpu0 = 0.0
        self.t0 = 0.0

    def start(self) -> None:
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()

    def stop(self, messages: int) -> dict[str, float]:
        elapsed = time.perf_counter() - self.t0
        cpu = time.process_time() - self.cpu0
        return {
            "messages": messages,
            "seconds": elapsed,
            "cpu": cpu,
            "rss_kib": peak_rss_kib(),
        }


def peak_rss_kib() -> int:
    """This process's peak RSS since its ``exec``.

    Not ``ru_maxrss``: Linux carries that high-water mark over from the parent that
    spawned us (``subprocess`` forks with vfork, sharing the parent's memory until
    ``exec``), so every child would show at least the bench parent's size.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Client(NamedTuple):
    name: str
    distribution: str
    """The PyPI distribution whose version the table shows ("" for our own code)."""
    note: str
    module: str
    """``bench._client_*`` module holding ``{prefix}_publish`` and ``{prefix}_receive``;
    imported by the child alone, so a child's RSS holds only its own client."""
    prefix: str
    receives: bool = True
    """False for a publishing-only client: no ``{prefix}_receive``, no receive figures."""


def deadline_passed(deadline: float) -> bool:
    return time.monotonic() > deadline


class Stalled(RuntimeError):
    """A client stopped making progress: the row fails rather than hanging the bench."""
