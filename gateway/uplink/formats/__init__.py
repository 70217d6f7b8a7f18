"""Message formats: how an uplink writes the events it sends (``mqtt.format``).

The outbox stores every event once, as tidegate's own JSON object
(``tidegate.payload``); a format rewrites each stored event into what its
consumers read, when the event is packed into a message, and joins a message's
events. A format is one module here with one class; ``FORMATS`` below registers
the built-ins (add a module, its import here, and its name to ``FormatName`` in the
schema, ``tidegate.config.schema``, where it is documented).

What a format writes is what the broker's message-size limit applies to: an
event that does not fit alone, or that a format cannot write, goes to the dead
letters with the reason, and is never retried.
"""

from __future__ import annotations

from typing import get_args

from tidegate.config.schema import FormatName
from tidegate.uplink.formats.base import Announcement, Format, FormatContext, FormatError
from tidegate.uplink.formats.cloudevents import CloudEvents, CloudEventsBinary
from tidegate.uplink.formats.homeassistant import HomeAssistant
from tidegate.uplink.formats.influx import InfluxLines
from tidegate.uplink.formats.json import Json, JsonBatch
from tidegate.uplink.formats.sparkplug import SparkplugB
from tidegate.uplink.formats.thingsboard import ThingsBoard

FORMATS: dict[str, type[Format]] = {
    f.name: f
    for f in (
        Json,
        JsonBatch,
        CloudEvents,
        CloudEventsBinary,
        InfluxLines,
        HomeAssistant,
        ThingsBoard,
        SparkplugB,
    )
}
if set(FORMATS) != set(get_args(FormatName)):  # pragma: no cover - caught by any test run
    raise ImportError("tidegate.uplink.formats: FORMATS and the schema's FormatName differ")

__all__ = [
    "FORMATS",
    "Announcement",
    "Format",
    "FormatContext",
    "FormatError",
    "FormatName",
    "format_named",
]


def format_named(name: str, context: FormatContext) -> Format:
    """The format ``mqtt.format`` names (validated by the schema already)."""
    return FORMATS[name](context)
