"""Is the wall clock to be trusted, and did it just jump?

A Raspberry Pi has no real-time clock: it boots with the time it had at
shutdown (or 1970) and steps to the true time when NTP syncs, possibly hours
later. tidegate watches the offset between the wall clock and the monotonic
clock (which never jumps): a change larger than ``step_threshold`` is a step
of the wall clock, and its size is exactly the error of every timestamp taken
before it in this boot — which lets the outbox correct them. A wall clock
earlier than this release's date cannot be right: events accepted then are
marked ``time_synced: false``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

RELEASE_EPOCH = 1_764_547_200.0
"""2025-12-01T00:00:00Z: no true clock reads earlier than this release."""

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def current_boot_id() -> str:
    """The kernel's id of this boot (monotonic time restarts with it)."""
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        return f"unknown-{uuid.uuid4()}"


class ClockWatcher:
    def __init__(
        self,
        *,
        step_threshold: float = 2.0,
        min_plausible: float = RELEASE_EPOCH,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.step_threshold = step_threshold
        self.min_plausible = min_plausible
        self._wall = wall
        self._mono = mono
        self.boot_id = current_boot_id()
        self._offset = wall() - mono()
        self.trusted = wall() >= min_plausible
        self.steps = 0

    def now(self) -> float:
        """The wall clock this watcher reads."""
        return self._wall()

    def check(self) -> float | None:
        """Re-read both clocks; return the size of a wall-clock step since the last check."""
        offset = self._wall() - self._mono()
        delta = offset - self._offset
        self.trusted = self._wall() >= self.min_plausible
        if abs(delta) > self.step_threshold:
            self._offset = offset
            self.steps += 1
            return delta
        # Small drift (NTP slewing) is followed quietly, so it never adds up to a step.
        self._offset = offset
        return None
