"""An event with its route: what the rule stage hands the outbox."""

from __future__ import annotations

from typing import NamedTuple

from tidegate.event import Event


class Outgoing(NamedTuple):
    event: Event
    topic: str
    qos: int
    retain: bool
