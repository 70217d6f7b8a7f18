"""Which broker the uplink connects to: the first of ``mqtt.host`` and its
``fallbacks``, the next one after ``failover_after`` failed attempts in a row, and
back to the first once it answers again (``return_after``).

A policy with no I/O: the publisher connects, and probes the first broker every
``return_after`` while on another.
Moving back is one try: if the first broker then refuses or is not there after
all, the uplink goes straight back to the broker it came from, rather than
failing ``failover_after`` times first.
"""

from __future__ import annotations

from collections.abc import Sequence


class BrokerList:
    def __init__(
        self,
        addresses: Sequence[tuple[str, int]],
        *,
        failover_after: int,
        return_after: float,
    ) -> None:
        if not addresses:
            raise ValueError("an uplink needs a broker")
        self.addresses = list(addresses)
        self.failover_after = failover_after
        self.return_after = return_after
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

    def failed(self) -> str | None:
        """A connection attempt failed; what to log if the uplink moves to another broker."""
        if self._came_from is not None:
            self.index, self._came_from = self._came_from, None
            return f"broker {self.name(0)} still unavailable: back to {self.name()}"
        self._failures += 1
        if self._failures < self.failover_after or len(self.addresses) < 2:
            return None
        before = self.name()
        self.index = (self.index + 1) % len(self.addresses)
        self._failures = 0
        return (
            f"broker {before} unavailable {self.failover_after} times in a row: "
            f"failing over to {self.name()}"
        )

    def connected(self) -> None:
        self._failures = 0
        self._came_from = None

    def go_back(self) -> str:
        """The first broker answers again: the next attempt is to it (one try)."""
        note = f"broker {self.name(0)} answers again: moving back to it from {self.name()}"
        self._came_from, self.index, self._failures = self.index, 0, 0
        return note
