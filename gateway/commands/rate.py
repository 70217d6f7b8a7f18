"""A command's rate limit: at most ``count`` calls in any window of ``per`` seconds."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tidegate.commands.config import RateLimit
from tidegate.commands.message import CommandRefused


class RateWindow:
    """Calls taken in the last ``per`` seconds, on an injected monotonic clock."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        self._taken: deque[float] = deque()

    def take(self, name: str) -> None:
        """Count a call, or refuse it (``rate_limited``) when the window is full."""
        now = self._clock()
        taken = self._taken
        while taken and taken[0] <= now - self._limit.per:
            taken.popleft()
        if len(taken) >= self._limit.count:
            wait = taken[0] + self._limit.per - now
            raise CommandRefused(
                f"{name}: {self._limit.count} calls in {self._limit.per:g} s already; "
                f"the next is taken in {wait:.0f} s",
                reason="rate_limited",
            )
        taken.append(now)
