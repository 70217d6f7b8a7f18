"""Reading a stored event back, as every format that rewrites one does: its JSON
object with the text fields it needs, and its time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tidegate.uplink.formats.base import FormatError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stored_event(stored: bytes, texts: tuple[str, ...]) -> dict[str, Any]:
    """The stored event's object; FormatError unless each of ``texts`` is non-empty text."""
    try:
        doc = orjson.loads(stored)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"not a JSON event: {exc}") from None
    if not isinstance(doc, dict):
        raise FormatError("not a JSON object")
    for key in texts:
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise FormatError(f"the event has no {key!r} text")
    return doc


def since_epoch(time: object) -> timedelta:
    """The event's RFC 3339 time since the Unix epoch, exactly (no float on the way)."""
    if not isinstance(time, str):
        raise FormatError("the event has no time")
    try:
        when = datetime.fromisoformat(time)
    except ValueError:
        raise FormatError(f"the event's time {time!r} is not RFC 3339") from None
    if when.tzinfo is None:
        raise FormatError(f"the event's time {time!r} has no offset")
    return when - _EPOCH
