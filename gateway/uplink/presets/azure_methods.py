"""Azure IoT Hub's direct methods as commands (``preset: azure_iot_hub`` with ``commands:``).

IoT Hub takes no subscription of a device's own choosing (it ends the connection), so
an uplink on this preset takes commands the hub's way only: a direct method call
arrives on ``$iothub/methods/POST/<method>/?$rid=<request id>`` with a JSON payload,
and its answer goes to ``$iothub/methods/res/<status>/?$rid=<request id>``. The method
is the command's name under ``commands.allow``; the payload (a JSON object) its
arguments. The answer's status and body:

- ``done``: 200, the result (``{"result": ...}``);
- ``refused``: 400 (``bad_request``, ``bad_arguments``), 403 (``not_authorised``), 404
  (``unknown_command``), 408 (``expired``), 409 (``interlock``, ``busy``), 429
  (``rate_limited``), with ``{"reason": ..., "message": ...}``;
- ``failed``: 500, with ``{"message": ...}``.

The hub waits for the answer up to the call's response timeout (30 s by default), and
``accepted`` has no answer of its own. Request ids are the hub's per connection: a
repeated call is recognised within one connection (the id is ``<rid>@<session>``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import parse_qs

from tidegate.commands.native import NativeCommand
from tidegate.uplink.formats import Format
from tidegate.uplink.presets.base import PresetFormat, TopicRule

FILTER = "$iothub/methods/POST/#"
METHOD_TIMEOUT = 30.0
"""IoT Hub's default response timeout for a direct method call, in seconds."""
_PREFIX = "$iothub/methods/POST/"

STATUS_OF_REASON = {
    "bad_request": 400,
    "bad_arguments": 400,
    "not_authorised": 403,
    "unknown_command": 404,
    "expired": 408,
    "interlock": 409,
    "busy": 409,
    "rate_limited": 429,
}


def status_code(status: str, fields: dict[str, Any]) -> int | None:
    """The HTTP-like status of an answer; None for a step with none (``accepted``)."""
    if status == "done":
        return 200
    if status == "refused":
        return STATUS_OF_REASON.get(str(fields.get("reason")), 400)
    if status in ("failed", "interrupted"):
        return 500
    return None


class AzureFormat(PresetFormat):
    """A format on IoT Hub: its events through the preset's topic rule, and commands
    as the hub's direct methods, never on a topic of our own."""

    own_command_topic = False

    def __init__(self, inner: Format, rule: TopicRule) -> None:
        super().__init__(inner, rule)
        self._session = secrets.token_hex(4)

    def command_filters(self) -> list[str]:
        self._session = secrets.token_hex(4)  # asked once per connection
        return [FILTER]

    def command_of(self, topic: str, payload: bytes) -> NativeCommand | None:
        if not topic.startswith(_PREFIX):
            return None
        method, _, query = topic[len(_PREFIX) :].partition("/")
        rid = parse_qs(query.lstrip("?")).get("$rid", [None])[0]
        if not method or rid is None:
            return None
        try:
            doc = json.loads(payload) if payload.strip() else {}
        except ValueError:
            doc = None
        # A call's arguments are an object; anything else is refused as a bad request.
        args = doc if isinstance(doc, dict) else {"payload": doc}

        def reply(status: str, fields: dict[str, Any]) -> list[tuple[str, bytes]]:
            code = status_code(status, fields)
            if code is None:
                return []
            body = {k: v for k, v in fields.items() if k in ("result", "reason", "message")}
            return [(f"$iothub/methods/res/{code}/?$rid={rid}", json.dumps(body).encode())]

        # The hub waits 30 s for an answer unless the caller said otherwise; its caller
        # retries with a new request id after that, so a late run would be a second one.
        return NativeCommand(
            "azure", method, f"{rid}@{self._session}", args, reply, expires_in=METHOD_TIMEOUT
        )
