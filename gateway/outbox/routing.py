"""What a stored route says beyond topic, QoS and retain: the uplinks its events go
to (``publish: {uplink: ...}``) and how long they are worth sending
(``publish: {expire_after: ...}``).

A route (``routes``: topic, qos, retain) is stored once and shared by its events. A
route with either has them in a header before its topic, ended by a NUL
(``uplinks=local-ha;expire=3600\0site/farm-7/greenhouse/temperature``): MQTT forbids
NUL in topic names, so no real topic reads as a header, and an outbox from before
either reads as it always did. Everything that hands events out decodes the route
here: the topic they are sent on is then a ``RoutedTopic`` (a ``str``) that knows them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

SEPARATOR = "\0"


class RoutedTopic(str):
    """A topic with what its route says of its events (a ``str`` everywhere else)."""

    uplinks: frozenset[str] | None = None
    """The uplinks its events go to; None: every one."""
    expire_after: float | None = None
    """Seconds after its events' time they are no longer sent; None: never."""


def stored_topic(topic: str, uplinks: Iterable[str] = (), expire_after: float | None = None) -> str:
    """The route's topic as stored: ``topic``, with its uplinks and expiry, if any."""
    names = sorted(set(uplinks))
    fields = [f"uplinks={','.join(names)}"] if names else []
    if expire_after is not None:
        fields.append(f"expire={expire_after:g}")
    return f"{';'.join(fields)}{SEPARATOR}{topic}" if fields else topic


def route_topic(stored: str) -> str:
    """The topic events of a stored route are sent on (a ``RoutedTopic`` with a header)."""
    if SEPARATOR not in stored:
        return stored
    header, topic = stored.split(SEPARATOR, 1)
    routed = RoutedTopic(topic)
    for field in header.split(";"):
        key, _, value = field.partition("=")
        if key == "uplinks" and value:
            routed.uplinks = frozenset(value.split(","))
        elif key == "expire":
            # A value this release cannot read: the events are sent, never lost.
            with contextlib.suppress(ValueError):
                routed.expire_after = float(value)
    return routed


def routed_to(topic: str) -> frozenset[str] | None:
    """The uplinks events on ``topic`` (as handed out) go to; None: every uplink."""
    return getattr(topic, "uplinks", None)


def expires_after(topic: str) -> float | None:
    """Seconds after their time events on ``topic`` are no longer sent; None: never."""
    return getattr(topic, "expire_after", None)
