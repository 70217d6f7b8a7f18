"""``cloudevents``: CloudEvents 1.0 in structured mode, JSON (``application/cloudevents+json``).

Each event becomes a CloudEvent whose ``data`` is the stored event itself, unchanged::

    {"specversion": "1.0", "id": "<the event's id>", "source": "/tidegate/<gateway>/<source>",
     "type": "io.tidegate.event", "subject": "<name>", "time": "<the event's time>",
     "datacontenttype": "application/json", "data": {<the event as stored>}}

The event id is the CloudEvent's id, so a consumer that deduplicates CloudEvents by
``source`` and ``id`` drops the duplicates an at-least-once delivery sends. A message
of several events is a JSON array of them (the JSON batch format,
``application/cloudevents-batch+json``). Under MQTT 5 each message carries that
media type as its Content Type, as the CloudEvents MQTT binding asks. Binary mode
(attributes as MQTT 5 user properties, the payload the data alone) is
``cloudevents_binary``: MQTT 5 only, one event per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import quote

import orjson

from tidegate.mqtt.wire.packets import user_property
from tidegate.payload import join_payloads
from tidegate.uplink.formats.base import Format, FormatError
from tidegate.uplink.formats.stored import stored_event

EVENT_TYPE = "io.tidegate.event"


class CloudEvents(Format):
    name: ClassVar[str] = "cloudevents"

    def event(self, stored: bytes) -> bytes:
        attributes = _attributes(stored)
        attributes["datacontenttype"] = "application/json"
        # The stored bytes are the data as they are: nothing re-encoded.
        return orjson.dumps(attributes)[:-1] + b',"data":' + stored + b"}"

    def join(self, events: Sequence[bytes]) -> bytes:
        return join_payloads(events)

    def content_type(self, batched: bool) -> str | None:
        # The CloudEvents MQTT binding: in MQTT 5, structured mode says so in the Content Type.
        return "application/cloudevents-batch+json" if batched else "application/cloudevents+json"


class CloudEventsBinary(Format):
    """Binary mode of the CloudEvents MQTT binding (MQTT 5, one event per message): the
    payload is the data, the stored event as it is; each attribute is a User Property
    named after it; ``datacontenttype`` is the message's Content Type."""

    name: ClassVar[str] = "cloudevents_binary"
    describes: ClassVar[bool] = True

    def event(self, stored: bytes) -> bytes:
        _attributes(stored)  # checked when packed: what cannot be a CloudEvent is refused
        return stored

    def join(self, events: Sequence[bytes]) -> bytes:
        raise FormatError("binary mode carries one event per message")  # schema: never

    def content_type(self, batched: bool) -> str | None:
        return "application/json"

    def message_properties(self, events: Sequence[bytes]) -> bytes:
        return b"".join(user_property(k, v) for k, v in _attributes(events[0]).items())


def _attributes(stored: bytes) -> dict[str, str]:
    """The CloudEvent attributes of a stored event (all but ``datacontenttype``)."""
    doc = stored_event(stored, ("id", "source", "name", "time"))
    gateway = doc.get("gateway")
    path = "/".join(quote(str(part), safe="") for part in (gateway, doc["source"]) if part)
    return {
        "specversion": "1.0",
        "id": str(doc["id"]),
        "source": f"/tidegate/{path}",
        "type": EVENT_TYPE,
        "subject": str(doc["name"]),
        "time": str(doc["time"]),
    }
