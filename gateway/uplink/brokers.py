"""Which broker the uplink connects to next, and when: the first of ``mqtt.host`` and
its ``fallbacks``, the next one after ``failover_after`` failed attempts in a row, and
back to the first once it accepts an MQTT connection again (``return_after``).

No I/O here: the publisher connects, and probes the first broker while on another.
A move to the next broker is tried at once, until the list comes round to the first
again; from there the reconnect backoff goes on growing, so brokers that are all
down are not tried in a loop. Moving back is one try: if the first broker then
fails, the uplink goes straight back to the broker it came from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from tidegate.backoff import Backoff

# Logged as the publisher: what users see stays the same.
log = logging.getLogger("tidegate.uplink.publisher")


class BrokerList:
    def __init__(
        self,
        addresses: Sequence[tuple[str, int]],
        *,
        failover_after: int,
        return_after: float,
        backoff: Backoff,
        who: str = "",
    ) -> None:
        self.who = who
        """What its log lines start with (``uplink NAME: `` with several uplinks)."""
        if not addresses:
            raise ValueError("an uplink needs a broker")
        self.addresses = list(addresses)
        self.failover_after = failover_after
        self.return_after = return_after
        self.backoff = backoff
        self.index = 0
        self._failures = 0
        self._came_from: int | None = None
        """While trying the first broker again: the broker to go back to if it fails."""

    @property
    def current(self) -> tuple[str, int]:
        return self.addresses[self.index]

    @property
    def on_fallback(self) -> bool:
        return self.index != 0

    def name(self, index: int | None = None) -> str:
        host, port = self.addresses[self.index if index is None else index]
        return f"{host}:{port}"

    def failed(self, error: str) -> float:
        """A connection attempt failed with ``error``: how long to wait before the next
        (to this broker or another); says so in the log."""
        tried = self.name()
        if self._came_from is not None:
            self.index, self._came_from = self._came_from, None
            log.warning(
                "%sbroker %s still unavailable (%s): back to %s",
                self.who,
                tried,
                error,
                self.name(),
            )
            return 0.0
        self._failures += 1
        if self._failures >= self.failover_after and len(self.addresses) > 1:
            self.index = (self.index + 1) % len(self.addresses)
            self._failures = 0
            log.warning(
                "%sbroker %s unavailable %d times in a row (%s): failing over to %s",
                self.who,
                tried,
                self.failover_after,
                error,
                self.name(),
            )
            if self.index != 0:
                return 0.0  # the next broker at once; round to the first, the backoff's wait
        delay = self.backoff.next_delay()
        attempt = self.backoff.failures
        if attempt == 1 or attempt % 20 == 0:
            log.warning(
                "%sbroker %s unavailable (%s); retrying in %.1f s (attempt %d)",
                self.who,
                self.name(),
                error,
                delay,
                attempt,
            )
        return delay

    def connected(self) -> None:
        self._failures = 0
        self._came_from = None
        self.backoff.reset()

    async def until_first_accepts(
        self, probe: Callable[[tuple[str, int]], Awaitable[bool]]
    ) -> None:
        """Every ``return_after``, ``probe`` the first broker; return once it accepts."""
        while True:
            await asyncio.sleep(self.return_after)
            if await probe(self.addresses[0]):
                return

    def go_back(self) -> None:
        """The first broker accepts connections again: the next attempt is to it."""
        log.info("%sbroker %s is back: moving to it from %s", self.who, self.name(0), self.name())
        self._came_from, self.index, self._failures = self.index, 0, 0
