"""Route expiry (``publish: {expire_after: 1h}``): a reading not worth sending after a
while is dropped when an uplink would send it late, never delivered after a day offline.

An event's age is the publisher's wall clock minus the event's ``time``, judged only
while the gateway trusts its clock (a Pi without a real-time clock boots in the past:
its events would all look fresh, then all look stale once NTP steps the clock). An
event whose time cannot be read is sent: expiry never loses an event it cannot judge.
What is left of the time goes with the message on MQTT 5 (Message Expiry Interval),
so the broker does not hand a subscriber that is away the message too late either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import orjson

from tidegate.outbox import Row
from tidegate.outbox.routing import expires_after
from tidegate.uplink.formats.base import FormatError
from tidegate.uplink.formats.stored import since_epoch


class Aged(NamedTuple):
    expired: list[int]
    """Positions in the rows of the events past their route's expiry."""
    too_old: list[int]
    """Positions of the others past the uplink's ``max_event_age``."""
    remaining: dict[int, int]
    """Per row id of an expiring event still worth sending, whole seconds left (≥ 1)."""


def any_expiring(rows: Sequence[Row]) -> bool:
    return any(expires_after(row.topic) is not None for row in rows)


def age_out(rows: Sequence[Row], now: float, max_event_age: float | None = None) -> Aged:
    """Which of ``rows`` are past their route's ``expire_after``, or past the uplink's
    ``max_event_age``, at ``now``."""
    aged = Aged([], [], {})
    for at, row in enumerate(rows):
        ttl = expires_after(row.topic)
        if ttl is None and max_event_age is None:
            continue
        time = event_time(row.payload)
        if time is None:
            continue
        age = now - time
        if ttl is not None and age >= ttl:
            aged.expired.append(at)
        elif max_event_age is not None and age >= max_event_age:
            aged.too_old.append(at)
        else:
            left = min(t - age for t in (ttl, max_event_age) if t is not None)
            aged.remaining[row.id] = max(1, math.ceil(left))
    return aged


def event_time(stored: bytes) -> float | None:
    """A stored event's time, seconds since the epoch; None if it cannot be read."""
    try:
        doc = orjson.loads(stored)
        return since_epoch(doc.get("time") if isinstance(doc, dict) else None).total_seconds()
    except (orjson.JSONDecodeError, FormatError):
        return None
