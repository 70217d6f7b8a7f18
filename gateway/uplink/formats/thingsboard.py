"""``thingsboard``: ThingsBoard's gateway MQTT API, so each source shows in ThingsBoard
as a device of its own behind the gateway (itself a ThingsBoard device with "Is
gateway" on, connecting with its access token as ``username``).

Events go to ``v1/gateway/telemetry`` whatever their route's topic, as::

    {"farm-7/greenhouse": [{"ts": 1764162300125, "values": {"temperature": 21.4}}]}

(the device is ``<gateway>/<source>``; ``ts`` the event's time in milliseconds; a
structured value gives one key per field, ``<name>.<key>``). A message of several
events merges them, device by device. Before a device's first event, and again on
every connection, ``v1/gateway/connect`` says ``{"device": ..., "type": "tidegate"}``
and ``v1/gateway/attributes`` gives its units (``{"farm-7/greenhouse":
{"unit.temperature": "°C"}}``). A reading with no value (NaN) cannot be sent.

With ``commands:``, ThingsBoard's server-side RPC calls the declared commands
(``thingsboard_rpc``: to a device on ``v1/gateway/rpc``, to the gateway itself on
``v1/devices/me/rpc/request/+``), answered the RPC's way.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from tidegate.uplink.formats import thingsboard_rpc as rpc
from tidegate.uplink.formats.base import Announcement, Format, FormatError
from tidegate.uplink.formats.stored import since_epoch, stored_event

if TYPE_CHECKING:
    from tidegate.commands.native import NativeCommand

_TEXTS = ("source", "name", "time")
TELEMETRY = "v1/gateway/telemetry"
CONNECT = "v1/gateway/connect"
ATTRIBUTES = "v1/gateway/attributes"


class ThingsBoard(Format):
    name: ClassVar[str] = "thingsboard"
    announces: ClassVar[bool] = True
    retopics: ClassVar[bool] = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._devices: dict[str, list[Announcement]] = {}
        self._units: set[tuple[str, str]] = set()
        self._session = secrets.token_hex(4)

    def topic(self, routed: str, stored: bytes) -> str:
        return TELEMETRY

    def event(self, stored: bytes) -> bytes:
        doc = stored_event(stored, _TEXTS)
        value = doc.get("value")
        values = (
            {f"{doc['name']}.{k}": v for k, v in value.items() if v is not None}
            if isinstance(value, dict)
            else {doc["name"]: value}
            if value is not None
            else {}
        )
        if not values:
            raise FormatError("the event has no value to send")
        return orjson.dumps({_device(doc): [{"ts": _milliseconds(doc["time"]), "values": values}]})

    def join(self, events: Sequence[bytes]) -> bytes:
        merged: dict[str, list[object]] = {}
        for event in events:
            for device, items in orjson.loads(event).items():
                merged.setdefault(device, []).extend(items)
        return orjson.dumps(merged)

    def announce(self, stored: bytes, topic: str) -> list[Announcement]:
        doc = stored_event(stored, _TEXTS)
        device = _device(doc)
        out: list[Announcement] = []
        if device not in self._devices:
            connect = Announcement(
                CONNECT, orjson.dumps({"device": device, "type": "tidegate"}), retain=False
            )
            self._devices[device] = [connect]
            out.append(connect)
        unit = doc.get("unit")
        if isinstance(unit, str) and (device, doc["name"]) not in self._units:
            self._units.add((device, doc["name"]))
            attributes = Announcement(
                ATTRIBUTES, orjson.dumps({device: {f"unit.{doc['name']}": unit}}), retain=False
            )
            self._devices[device].append(attributes)
            out.append(attributes)
        return out

    def reannounce(self) -> list[Announcement]:
        return [a for announcements in self._devices.values() for a in announcements]

    def command_filters(self) -> list[str]:
        # Asked once per connection: RPC ids are scoped to it (thingsboard_rpc says why).
        self._session = secrets.token_hex(4)
        return list(rpc.FILTERS)

    def command_of(self, topic: str, payload: bytes) -> NativeCommand | None:
        return rpc.rpc_command(topic, payload, self.context.commands, self._session)


def _device(doc: dict[str, Any]) -> str:
    gateway = doc.get("gateway")
    return f"{gateway}/{doc['source']}" if gateway else str(doc["source"])


def _milliseconds(time: str) -> int:
    """The event's time in whole milliseconds since the epoch (truncated)."""
    return since_epoch(time) // _MILLISECOND


_MILLISECOND = timedelta(milliseconds=1)
