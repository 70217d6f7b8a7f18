"""An event with its route: what the rule stage hands the outbox."""

from __future__ import annotations

from typing import NamedTuple

from tidegate.event import Event
from tidegate.priority import NORMAL


class Outgoing(NamedTuple):
    event: Event
    topic: str
    qos: int
    retain: bool
    priority: int = NORMAL
    """0 high, 1 normal, 2 low: higher classes are published first and dropped last."""
    uplinks: tuple[str, ...] = ()
    """The uplinks it goes to (``publish: {uplink: ...}``); empty: every one."""
    expire_after: float | None = None
    """Seconds after its time it is no longer worth sending (``publish: {expire_after:}``)."""
