"""systemd's notify protocol, without a dependency: datagrams on ``$NOTIFY_SOCKET``.

A ``Type=notify`` service tells systemd ``READY=1`` once it serves,
``RELOADING=1``/``READY=1`` around a reload, ``STOPPING=1`` when it begins to
shut down, and ``WATCHDOG=1`` at least every ``WatchdogSec=`` (passed to us as
``$WATCHDOG_USEC``). The pings come from a task on the event loop itself, so a
loop that is stuck (a blocking call, a busy loop) stops pinging and systemd
restarts the service.

Outside systemd (no ``$NOTIFY_SOCKET``) every method is a cheap no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping

log = logging.getLogger(__name__)

PINGS_PER_TIMEOUT = 2
"""Ping twice per watchdog timeout, as sd_watchdog_enabled(3) recommends."""


def _socket_address(value: str) -> str | bytes:
    # "@name" is an abstract-namespace socket: a leading NUL byte on the wire.
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """Sends notify messages to systemd; does nothing when not started by it."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_timeout = watchdog_usec / 1_000_000 if watchdog_usec else None
        """Seconds systemd waits for a ping before it kills the service; None: no watchdog."""
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = True
    ) -> Notifier:
        """Read ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC``/``$WATCHDOG_PID``.

        With ``unset`` the variables are removed, so that a child process (a
        local Mosquitto started by ``simulate``) cannot talk to systemd as us.
        """
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        usec_text = env.get("WATCHDOG_USEC", "")
        pid_text = env.get("WATCHDOG_PID", "")
        usec = int(usec_text) if usec_text.isdigit() and int(usec_text) > 0 else None
        if pid_text and (not pid_text.isdigit() or int(pid_text) != os.getpid()):
            usec = None  # the watchdog is meant for another process
        if unset:
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                env.pop(name, None)
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings; None when systemd asked for no watchdog."""
        if self.address is None or self.watchdog_timeout is None:
            return None
        return self.watchdog_timeout / PINGS_PER_TIMEOUT

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram. Returns whether it was sent.

        Never raises: a lost notification must not take the gateway down (at
        worst systemd times the start out and says so).
        """
        if self.address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)
            self._socket.sendto(message, _socket_address(self.address))
        except OSError as exc:
            if not self._warned:  # once: the same failure would repeat at every ping
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd (253+, Type=notify-reload) tell this reload from an older one.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    async def watchdog_loop(self, alive: Callable[[], bool] | None = None) -> None:
        """Ping every ``watchdog_interval`` until cancelled; return at once without a watchdog.

        ``alive`` (optional) is asked before each ping: answering False
        withholds the ping, so systemd restarts a gateway whose loop still
        runs but whose pipeline has died.
        """
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            if alive is None or alive():
                self.watchdog()
            await asyncio.sleep(interval)

    def start_watchdog(self, alive: Callable[[], bool] | None = None) -> asyncio.Task[None] | None:
        """The ping task on the running loop, or None when systemd asked for no watchdog."""
        if self.watchdog_interval is None:
            return None
        return asyncio.get_running_loop().create_task(self.watchdog_loop(alive), name="sd-watchdog")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
