"""The wire format: one JSON object per event.

```json
{"id": "01935c8e-...", "gateway": "gw1", "source": "greenhouse", "name": "temperature",
 "value": 21.4, "time": "2026-11-26T13:05:00.125000Z", "seq": 1042, "unit": "°C",
 "tags": {"room": "north"}}
```
``unit`` and ``tags`` are left out when the event has none. ``time_source:
"device"`` marks a time the device sent (``parse.time_field``) rather than the
gateway's clock at arrival; it is left out otherwise. ``time_synced: false``
marks an event stamped by the gateway while its wall clock could not be trusted
(earlier than this release: a device without a real-time clock before NTP);
``time_corrected: true`` an event whose time was corrected after the clock
stepped. Neither is ever on a device's time: the gateway's clock did not make
it, and a step of that clock does not move it. With
``mqtt.events_per_message`` above 1, a message is a JSON array of such
objects, all for the same topic, oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from tidegate.event import Event
from tidegate.timefmt import rfc3339


def event_document(
    event: Event,
    *,
    gateway: str | None = None,
    seq: int | None = None,
    with_id: bool = True,
) -> dict[str, object]:
    """An event as a JSON object (not yet encoded): the one place that decides its keys.

    The wire format passes ``gateway`` and ``seq``; a recording, ``tidegate
    tail`` and ``rules test`` leave them out (and the id, if asked to).
    """
    # One literal, then deletions: cheaper than building it key by key on the hot path.
    doc: dict[str, object] = {
        "id": event.id,
        "gateway": gateway,
        "source": event.source,
        "name": event.name,
        "value": event.value,
        "time": rfc3339(event.time),
        "seq": seq,
    }
    if not with_id:
        del doc["id"]
    if gateway is None:
        del doc["gateway"]
    if seq is None:
        del doc["seq"]
    if event.unit is not None:
        doc["unit"] = event.unit
    if event.tags:
        doc["tags"] = event.tags
    if event.time_source is not None:
        doc["time_source"] = event.time_source
    return doc


def encode_event(event: Event, seq: int, gateway: str, *, synced: bool = True) -> bytes:
    """The payload of one event on the wire (what the outbox stores).

    ``synced`` is whether the gateway's clock was trusted at acceptance: it marks
    only a time that clock made (a device's time does not depend on it).
    """
    doc = event_document(event, gateway=gateway, seq=seq)
    if not synced and event.time_source is None:
        doc["time_synced"] = False
    # NaN/inf are not JSON: orjson writes null for them, which is what a reader can parse.
    # orjson's bytes keep the 4 KiB buffer they were written into; a payload is held
    # from acceptance to PUBACK, so it is cut to size (the slice copies it; measured:
    # 4 KiB -> 0.2 KiB per held event, peak RSS under load 90 -> ~50 MB).
    return orjson.dumps(doc, option=_NEWLINE)[:-1]


_NEWLINE = orjson.OPT_APPEND_NEWLINE


def join_payloads(payloads: Sequence[bytes]) -> bytes:
    """A JSON array of already-encoded event objects, without re-encoding them."""
    return b"[" + b",".join(payloads) + b"]"
