"""Which uplinks a stored event goes to (``publish: {uplink: ...}``), kept in its route.

A route (``routes``: topic, qos, retain) is stored once and shared by its events. A
route that goes to some uplinks only has their names before its topic, joined by
commas and ended by a NUL (``local-ha\\0site/farm-7/greenhouse/temperature``): MQTT
forbids NUL in topic names, so no real topic reads as a restriction, and an outbox
from before several uplinks reads as it always did (every route to every uplink).
Everything that hands events out decodes the route here: the topic they are sent on
is a ``RoutedTopic`` (a ``str``) that knows its uplinks.
"""

from __future__ import annotations

from collections.abc import Iterable

SEPARATOR = "\0"


class RoutedTopic(str):
    """A topic whose events go only to ``uplinks`` (a ``str`` everywhere else)."""

    uplinks: frozenset[str]


def stored_topic(topic: str, uplinks: Iterable[str] = ()) -> str:
    """The route's topic as stored: ``topic``, with the uplinks it is restricted to."""
    names = sorted(set(uplinks))
    return f"{','.join(names)}{SEPARATOR}{topic}" if names else topic


def route_topic(stored: str) -> str:
    """The topic events of a stored route are sent on (a ``RoutedTopic`` if restricted)."""
    if SEPARATOR not in stored:
        return stored
    names, topic = stored.split(SEPARATOR, 1)
    routed = RoutedTopic(topic)
    routed.uplinks = frozenset(names.split(","))
    return routed


def routed_to(topic: str) -> frozenset[str] | None:
    """The uplinks events on ``topic`` (as handed out) go to; None: every uplink."""
    return getattr(topic, "uplinks", None)
