"""The Event: the one type that crosses stage boundaries.

Immutable. ``id`` is a UUIDv7 made when the event is created, so every copy a
retry or a crash produces carries the same id and the cloud side can
deduplicate. ``seq`` counts accepted events per source: the outbox assigns it
when it commits the event, so a gap in ``seq`` at the receiver always means an
event was dropped (and counted), never that it was filtered out.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import TypeAlias

from tidegate.ids import uuid7

Scalar: TypeAlias = int | float | bool | str
Value: TypeAlias = Scalar | dict[str, Scalar]


@dataclass(frozen=True, slots=True)
class Event:
    source: str
    name: str
    value: Value
    time: float = field(default_factory=_time.time)
    """Wall-clock seconds since the Unix epoch; RFC 3339 on the wire."""
    id: str = field(default_factory=uuid7)
    seq: int = 0
    """0 until the outbox accepts the event."""
    unit: str | None = None
    tags: dict[str, str] | None = None


def new_event(
    source: str,
    name: str,
    value: Value,
    *,
    unit: str | None = None,
    tags: dict[str, str] | None = None,
    time: float | None = None,
) -> Event:
    """Build an event stamped now (or at ``time``) with a fresh id."""
    t = _time.time() if time is None else time
    return Event(source, name, value, t, uuid7(int(t * 1000)), 0, unit, tags)
