"""ThingsBoard's server-side RPC as tidegate commands (``format: thingsboard``).

An uplink that takes commands subscribes to the two places ThingsBoard sends RPC to a
gateway:

- ``v1/gateway/rpc``: an RPC to a device behind the gateway,
  ``{"device": "farm-7/greenhouse", "data": {"id": 12, "method": "vent", "params":
  {"state": true}}}``, answered on the same topic with ``{"device": ..., "id": 12,
  "data": {...}}``;
- ``v1/devices/me/rpc/request/<id>``: an RPC to the gateway itself, ``{"method":
  "vent", "params": {...}}``, answered on ``v1/devices/me/rpc/response/<id>`` with
  the ``data`` object alone.

``method`` is the command's name under ``commands.allow`` (an RPC to any of the
gateway's devices may call any declared command: the device is echoed in the answer,
not checked). ``params`` are its arguments: an object as it is; a bare value (what
ThingsBoard's switch and knob widgets send) goes to the command's one argument
(``state`` of a gpio set, ``value`` of a Modbus write), and with no argument to fill
it is refused as a bad argument. The answer's ``data`` is ``{"result": ...}`` once
``done``; ``{"error": "...", "reason": "..."}`` when refused (the reasons of
``commands:``); ``{"error": "..."}`` when failed. ``accepted`` is not sent: ThingsBoard
takes the first answer as the RPC's outcome.

ThingsBoard numbers a device's RPCs from 0 again whenever its device actor restarts,
so an RPC's id is unique only for a while: tidegate makes it ``<device>:<id>@<session>``,
where the session changes with every connection. A message redelivered on the same
connection is answered once; the same number on a later connection is a new RPC.
The gateway's own answers on ``v1/gateway/rpc`` (no ``method``) are ignored when the
broker hands them back.
"""

from __future__ import annotations

import json
from typing import Any

from tidegate.commands.native import NativeCommand
from tidegate.uplink.formats.offers import CommandOffer

GATEWAY_RPC = "v1/gateway/rpc"
OWN_REQUEST = "v1/devices/me/rpc/request/"
OWN_RESPONSE = "v1/devices/me/rpc/response/"
FILTERS = [GATEWAY_RPC, OWN_REQUEST + "+"]
CONVENTION = "thingsboard"


def rpc_command(
    topic: str, payload: bytes, offers: tuple[CommandOffer, ...], session: str
) -> NativeCommand | None:
    """The command an RPC message asks for; None when the message is not an RPC."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if topic == GATEWAY_RPC:
        device, data = doc.get("device"), doc.get("data")
        if not isinstance(device, str) or not isinstance(data, dict):
            return None
        request = data.get("id")
        if not isinstance(data.get("method"), str) or not isinstance(request, int | str):
            return None  # our own answer, heard back; or not an RPC at all
        method, params = data["method"], data.get("params")

        def to_device(status: str, fields: dict[str, Any]) -> list[tuple[str, bytes]]:
            answer = _data(status, fields)
            if answer is None:
                return []
            doc = {"device": device, "id": request, "data": answer}
            return [(GATEWAY_RPC, json.dumps(doc, default=str).encode())]

        ident, reply = f"{device}:{request}@{session}", to_device
    elif topic.startswith(OWN_REQUEST):
        request_id = topic[len(OWN_REQUEST) :]
        if not request_id or not isinstance(doc.get("method"), str):
            return None
        method, params = doc["method"], doc.get("params")

        def to_gateway(status: str, fields: dict[str, Any]) -> list[tuple[str, bytes]]:
            answer = _data(status, fields)
            if answer is None:
                return []
            return [(OWN_RESPONSE + request_id, json.dumps(answer, default=str).encode())]

        ident, reply = f"me:{request_id}@{session}", to_gateway
    else:
        return None
    return NativeCommand(CONVENTION, method, ident, args_of(method, params, offers), reply)


def args_of(name: str, params: object, offers: tuple[CommandOffer, ...]) -> dict[str, Any]:
    """A command's arguments from a platform's parameters: an object as it is, nothing
    for none, a bare value into the command's one argument (``params`` without one:
    the command layer refuses it, naming the argument it does not take)."""
    if isinstance(params, dict):
        return dict(params)
    if params is None:
        return {}
    offer = next((o for o in offers if o.name == name), None)
    if offer is not None and offer.arg is not None:
        return {offer.arg: params}
    return {"params": params}


def _data(status: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The ``data`` of the answer to a result; None: ThingsBoard is not told."""
    if status == "done":
        return {"result": fields.get("result")}
    if status == "refused":
        return {"error": fields.get("message") or "refused", "reason": fields.get("reason")}
    if status in ("failed", "interrupted"):
        return {"error": fields.get("message") or status}
    return None  # accepted: the outcome comes next
