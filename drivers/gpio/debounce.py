"""Debouncing in software, by the kernel's rule, for chips that cannot do it themselves."""

from __future__ import annotations

from tidegate.drivers.gpio.backend import LineEdge


class SoftwareDebouncer:
    """The kernel's debounce rule, on event timestamps rather than arrival times.

    A raw edge becomes a candidate; it is confirmed once ``period_ns`` passes
    (by the next edge's timestamp, or by the backend's clock) without another
    edge, and reported, stamped with its own time, if it leaves the level
    different from the last confirmed one. Deterministic for a given timeline.
    """

    def __init__(self, period_ns: int, level: int) -> None:
        self.period_ns = period_ns
        self.level = level
        """The last confirmed (debounced) level."""
        self._candidate: LineEdge | None = None

    @property
    def deadline_ns(self) -> int | None:
        """When the pending candidate will be confirmed, if nothing else happens."""
        return None if self._candidate is None else self._candidate.timestamp_ns + self.period_ns

    def feed(self, edge: LineEdge) -> list[LineEdge]:
        confirmed = self.settle(edge.timestamp_ns)
        self._candidate = edge
        return confirmed

    def settle(self, now_ns: int) -> list[LineEdge]:
        candidate = self._candidate
        if candidate is None or now_ns - candidate.timestamp_ns < self.period_ns:
            return []
        self._candidate = None
        if candidate.level == self.level:
            return []  # bounced back to where it was: no edge
        self.level = candidate.level
        return [candidate]
