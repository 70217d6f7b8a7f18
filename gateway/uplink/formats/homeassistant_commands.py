"""Home Assistant entities that call the gateway's commands (``format: homeassistant``,
with ``commands:``).

Each command under ``commands.allow`` that a Home Assistant control can call is
announced by discovery, retained like the sensors, on
``<discovery_prefix>/<component>/<gateway>/cmd_<command>/config``, on the same device:

- a ``switch`` for a command whose one argument is true/false (a gpio ``do: set``):
  ``ON`` and ``OFF`` (``payload_on``/``payload_off``) call it with that argument true
  or false;
- a ``number`` for one whose one argument is a number with ``min`` and ``max`` (a
  Modbus write with ``args: {value: {type: number, min: 5, max: 30}}``): the number
  sent is the argument (``step`` 1 for an int, else 0.1, or 1 over a range above 1000);
- a ``button`` for one that needs no argument (a gpio ``toggle``, a ``pulse`` of a
  fixed ``duration``, the built-ins ``ping`` and ``rebirth``): ``PRESS`` calls it.

Home Assistant publishes to the entity's ``command_topic``, ``<topic_prefix>/ha/<command>/set``
(the uplink subscribes to ``<topic_prefix>/ha/+/set``). Its calls carry no id: each
is a new command (audited, never deduplicated). Once one is ``done``, the state the
device now holds (the action's result, else the argument) goes to the entity's
``state_topic``, ``<topic_prefix>/ha/<command>/state`` (``ON``/``OFF``, or the number),
at once, and retained with the next discovery messages, so Home Assistant shows it
after a restart too; a switch or number shows only what the gateway confirmed. A
refused or failed call is not answered (Home Assistant has no place for it): the
entity keeps the state it had, and the audit and the log say why. A payload the
entity could not have sent (not ``ON``/``OFF``, not a number) is refused as a bad
argument.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from tidegate import __version__
from tidegate.commands.native import NativeCommand
from tidegate.uplink.formats.base import Announcement, FormatContext
from tidegate.uplink.formats.offers import CommandOffer

CONVENTION = "homeassistant"
ON, OFF, PRESS = "ON", "OFF", "PRESS"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class HaCommands:
    """The command entities of one uplink, and the states they were last set to."""

    def __init__(self, context: FormatContext) -> None:
        self._context = context
        self._prefix = context.status_topic.removesuffix("/status")
        self._offers = {o.name: o for o in context.commands if o.entity is not None}
        self._states: dict[str, bytes] = {}
        """Per state topic, the last state confirmed (sent retained with the configs)."""
        self._unsent: dict[str, bytes] = {}
        """States not yet sent retained (they go with the next announcements)."""
        self.config_topics = {self._config_topic(o) for o in self._offers.values()}

    def filters(self) -> list[str]:
        return [f"{self._prefix}/ha/+/set"] if self._offers else []

    def configs(self) -> list[Announcement]:
        """Every entity's discovery config, then the states known (all retained)."""
        self._unsent.clear()
        configs = [
            Announcement(self._config_topic(o), self._config(o)) for o in self._offers.values()
        ]
        return configs + [Announcement(t, s) for t, s in self._states.items()]

    def unsent(self) -> list[Announcement]:
        """The states confirmed since the last announcements, retained this time."""
        out = [Announcement(t, s) for t, s in self._unsent.items()]
        self._unsent.clear()
        return out

    def command_of(self, topic: str, payload: bytes) -> NativeCommand | None:
        levels = topic.split("/")
        if len(levels) < 3 or levels[-1] != "set" or levels[-3] != "ha":
            return None
        name = levels[-2]
        text = payload.decode("utf-8", "replace").strip()
        offer = self._offers.get(name)
        if offer is None:  # not an entity of ours: the command layer refuses the name
            return NativeCommand(CONVENTION, name, None, {"payload": text})
        args = _args(offer, text)
        state_topic = self._state_topic(offer)

        def reply(status: str, fields: dict[str, Any]) -> list[tuple[str, bytes]]:
            if status != "done" or offer.entity == "button":
                return []
            state = _state(offer, fields.get("result"), args)
            if state is None:
                return []
            self._states[state_topic] = self._unsent[state_topic] = state
            return [(state_topic, state)]

        return NativeCommand(CONVENTION, name, None, args, reply)

    def _config(self, offer: CommandOffer) -> bytes:
        gateway = self._context.gateway
        config: dict[str, object] = {
            "name": offer.name,
            "unique_id": _UNSAFE.sub("_", f"tidegate_{gateway}_cmd_{offer.name}"),
            "command_topic": f"{self._prefix}/ha/{offer.name}/set",
            "availability_topic": self._context.status_topic,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {
                "identifiers": [f"tidegate_{gateway}"],
                "name": gateway,
                "manufacturer": "tidegate",
                "model": "tidegate edge gateway",
                "sw_version": __version__,
            },
            "origin": {"name": "tidegate", "sw_version": __version__},
        }
        if offer.entity == "button":
            config["payload_press"] = PRESS
        else:
            config["state_topic"] = self._state_topic(offer)
        if offer.entity == "switch":
            config["payload_on"], config["payload_off"] = ON, OFF
        elif offer.entity == "number":
            config["min"], config["max"], config["step"] = offer.min, offer.max, offer.step
            config["mode"] = "box"  # a setpoint is typed, not dragged through the range
        return orjson.dumps(config)

    def _config_topic(self, offer: CommandOffer) -> str:
        node = _UNSAFE.sub("_", self._context.gateway)
        object_id = _UNSAFE.sub("_", f"cmd_{offer.name}")
        return f"{self._context.discovery_prefix}/{offer.entity}/{node}/{object_id}/config"

    def _state_topic(self, offer: CommandOffer) -> str:
        return f"{self._prefix}/ha/{offer.name}/state"


def _args(offer: CommandOffer, text: str) -> dict[str, Any]:
    """The command's arguments from what the entity sent; what it could not have sent
    is passed on as it is, for the command layer to refuse as a bad argument."""
    if offer.entity == "button":
        return {} if text == PRESS else {"payload": text}
    assert offer.arg is not None
    if offer.entity == "switch":
        return {offer.arg: {ON: True, OFF: False}.get(text, text)}
    try:
        number = float(text)
    except ValueError:
        return {offer.arg: text}
    if offer.arg_type == "int" and number.is_integer():
        return {offer.arg: int(number)}
    return {offer.arg: number}


def _state(offer: CommandOffer, result: object, args: dict[str, Any]) -> bytes | None:
    """The entity's state after a call was done: what the device answered it holds,
    else what was asked."""
    value = args.get(offer.arg) if offer.arg is not None else None
    if offer.entity == "switch":
        held = result if isinstance(result, bool) else value
        return None if not isinstance(held, bool) else (ON if held else OFF).encode()
    held = result if isinstance(result, int | float) and not isinstance(result, bool) else value
    return None if not isinstance(held, int | float) else orjson.dumps(held)
