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
(attributes as MQTT 5 user properties) is not written: structured mode works on
MQTT 3.1.1 and 5 alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import quote

import orjson

from tidegate.payload import join_payloads
from tidegate.uplink.formats.base import Format, FormatError

EVENT_TYPE = "io.tidegate.event"


class CloudEvents(Format):
    name: ClassVar[str] = "cloudevents"

    def event(self, stored: bytes) -> bytes:
        doc = _stored_event(stored)
        gateway = doc.get("gateway")
        path = "/".join(quote(str(part), safe="") for part in (gateway, doc["source"]) if part)
        attributes = {
            "specversion": "1.0",
            "id": doc["id"],
            "source": f"/tidegate/{path}",
            "type": EVENT_TYPE,
            "subject": doc["name"],
            "time": doc["time"],
            "datacontenttype": "application/json",
        }
        # The stored bytes are the data as they are: nothing re-encoded.
        return orjson.dumps(attributes)[:-1] + b',"data":' + stored + b"}"

    def join(self, events: Sequence[bytes]) -> bytes:
        return join_payloads(events)

    def content_type(self, batched: bool) -> str | None:
        # The CloudEvents MQTT binding: in MQTT 5, structured mode says so in the Content Type.
        return "application/cloudevents-batch+json" if batched else "application/cloudevents+json"


def _stored_event(stored: bytes) -> dict[str, object]:
    """The stored event's object, with the fields a CloudEvent needs as strings."""
    try:
        doc = orjson.loads(stored)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"not a JSON event: {exc}") from None
    if not isinstance(doc, dict):
        raise FormatError("not a JSON object")
    for key in ("id", "source", "name", "time"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise FormatError(f"the event has no {key!r} text")
    return doc
