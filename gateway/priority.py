"""Priority classes: which events are published first and dropped last.

A rule's ``publish.priority`` names one; the outbox keeps one table per class
and the publisher takes the highest class first.
"""

from __future__ import annotations

from typing import Literal, get_args

Priority = Literal["high", "normal", "low"]
"""A priority class as the config names it."""

PRIORITIES: tuple[Priority, ...] = get_args(Priority)
"""Every class, highest first; a class's index is its number in the outbox."""

HIGH, NORMAL, LOW = range(len(PRIORITIES))


def priority_class(name: Priority) -> int:
    """The outbox's number for a class (0 is the highest)."""
    return PRIORITIES.index(name)
