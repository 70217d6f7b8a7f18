"""What the publisher tells ``tidegate status`` and the metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class PublisherStatus:
    connected: bool = False
    broker: str = ""
    """host:port of the broker connected to, or tried last (the first, or a fallback)."""
    since: float = field(default_factory=time.monotonic)
    last_error: str | None = None
    inflight: int = 0
    events_delivered: int = 0
    messages_delivered: int = 0
    events_rejected: int = 0
    events_too_old: int = 0
    """Events older than the uplink's ``max_event_age`` when it would send them."""
    events_expired: int = 0
    """Events this uplink found past their route's ``expire_after`` (dropped, not sent)."""
    connects: int = 0
    quota_exceeded: int = 0
    """PUBACKs "quota exceeded": messages kept in the outbox, to be sent again later."""

    @property
    def state(self) -> str:
        return "connected" if self.connected else "disconnected"
