"""What every message format provides (``tidegate.uplink.formats``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from tidegate.errors import PublishError


class FormatError(PublishError):
    """A stored event the format cannot write (it goes to the dead letters)."""


class Format:
    """Rewrites stored events (tidegate's JSON objects) into one format's messages."""

    name: ClassVar[str]
    reshapes: ClassVar[bool] = True
    """False where ``event`` returns the stored bytes as they are (no per-event work)."""
    always_joined: ClassVar[bool] = False
    """True where a message of one event is still written by ``join`` (a JSON array)."""

    def event(self, stored: bytes) -> bytes:
        """One stored event as this format writes it; FormatError if it cannot."""
        return stored

    def join(self, events: Sequence[bytes]) -> bytes:
        """The payload of a message carrying ``events`` (each already from ``event``)."""
        raise NotImplementedError

    def message(self, events: Sequence[bytes], *, batched: bool) -> bytes:
        """The payload of a message of ``events``: with one event per message
        (``batched`` False), the event as it is, unless ``always_joined``."""
        if not batched and not self.always_joined:
            return events[0]
        return self.join(events)

    def content_type(self, batched: bool) -> str | None:
        """The MQTT 5 Content Type its messages carry (None: no property, no bytes)."""
        return None
