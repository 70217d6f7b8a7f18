"""A wall clock and a monotonic clock a test sets by hand (the outbox's clock watcher
reads them: a Pi that booted without network, then NTP stepping the wall clock)."""

from __future__ import annotations

from tidegate.clock import ClockWatcher


class FakeClock:
    """A controllable wall clock and monotonic clock."""

    def __init__(self, wall: float) -> None:
        self.wall_now = wall
        self.mono_now = 1000.0

    def wall(self) -> float:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def advance(self, seconds: float) -> None:
        self.wall_now += seconds
        self.mono_now += seconds

    def watcher(self) -> ClockWatcher:
        return ClockWatcher(step_threshold=2.0, wall=self.wall, mono=self.mono)
