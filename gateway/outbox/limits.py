"""What bounds an outbox, as the ``buffer:`` section sets it: its size, what happens
when it is full, the age events may reach, and how durable a commit is.

Cheap to import (no SQLite, no asyncio): the config schema may name these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tidegate.errors import BufferError_

WhenFull = Literal["drop_oldest", "drop_newest", "block"]
"""What a commit that does not fit does (``tidegate.outbox.bound``)."""

Durability = Literal["batch", "fsync"]
"""``batch``: a power cut may lose the last commits (a crash of the process does not);
``fsync``: nothing committed is lost."""


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    max_bytes: int = 256 * 1024 * 1024
    when_full: WhenFull = "drop_oldest"
    max_age: float | None = None
    dead_letter_max_bytes: int = 16 * 1024 * 1024


class OutboxFull(BufferError_):
    """``when_full: block`` and no room: the caller holds the events and retries."""
