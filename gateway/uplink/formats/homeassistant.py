"""``homeassistant``: the events as ``json`` (one per message, on their own topics), and
Home Assistant's MQTT discovery, so every signal appears as an entity by itself.

The first time a signal (a source and name on a topic) is packed, a retained config
message goes to ``<discovery_prefix>/<component>/<gateway>/<source>_<name>/config``
before it; on every new connection all of them are sent again, and whenever Home
Assistant announces itself (``online`` on ``<discovery_prefix>/status``, which the
uplink subscribes to). A config says::

    {"name": "greenhouse temperature", "unique_id": "tidegate_farm-7_greenhouse_temperature",
     "state_topic": "<the event's topic>", "value_template": "{{ value_json.value }}",
     "unit_of_measurement": "°C", "device_class": "temperature", "state_class": "measurement",
     "availability_topic": "<prefix>/status", "payload_available": "online",
     "payload_not_available": "offline",
     "device": {"identifiers": ["tidegate_farm-7"], "name": "farm-7", ...},
     "origin": {"name": "tidegate", ...}}

True/false values make a ``binary_sensor``, numbers a ``sensor`` with a state class
(``total_increasing`` for energy and volume counters), text a ``sensor`` without one;
a structured value, one entity per key. The device class comes from the unit (and,
for ``%``, from a name that says humidity or battery). Configs are sent at QoS 0,
retained: they do not count against the broker's in-flight limit, and the next
connection sends them again.

A signal not packed for ``discovery_forget_after`` has its entities removed (an
empty retained config); the uplink also listens to this gateway's configs retained
on the broker, and removes those no signal of this run took up in that time (what an
earlier run announced for a signal since renamed or gone).

With ``commands:``, the commands a Home Assistant control can call are entities too
(switches, numbers and buttons on the same device; ``homeassistant_commands``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from tidegate import __version__
from tidegate.uplink.formats.base import Announcement
from tidegate.uplink.formats.homeassistant_commands import HaCommands
from tidegate.uplink.formats.json import Json
from tidegate.uplink.formats.stored import stored_event

if TYPE_CHECKING:
    from tidegate.commands.native import NativeCommand

DEVICE_CLASS_BY_UNIT = {
    "°C": "temperature",
    "°F": "temperature",
    "K": "temperature",
    "W": "power",
    "kW": "power",
    "Wh": "energy",
    "kWh": "energy",
    "V": "voltage",
    "mV": "voltage",
    "A": "current",
    "mA": "current",
    "Hz": "frequency",
    "hPa": "pressure",
    "Pa": "pressure",
    "kPa": "pressure",
    "bar": "pressure",
    "mbar": "pressure",
    "lx": "illuminance",
    "m³": "volume",
    "L": "volume",
    "ppm": "carbon_dioxide",
    "dBm": "signal_strength",
}
TOTALS = frozenset({"Wh", "kWh", "m³", "L"})
"""Units of counters that only grow: ``state_class: total_increasing``."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class HomeAssistant(Json):
    name: ClassVar[str] = "homeassistant"
    announces: ClassVar[bool] = True
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._sent: dict[tuple[str, str, str], list[Announcement]] = {}
        """Per signal (topic, source, name), its configs."""
        self._seen: dict[tuple[str, str, str], float] = {}
        """Per signal, when an event of it was last packed (``clock``)."""
        self._found: dict[str, float] = {}
        """Config topics of this gateway retained on the broker that no signal of this run
        has (yet), with when they were first heard."""
        self._next_sweep = 0.0
        self._commands = HaCommands(self.context)

    def announce(self, stored: bytes, topic: str) -> list[Announcement]:
        doc = stored_event(stored, ("source", "name"))
        key = (topic, doc["source"], doc["name"])
        now = self.clock()
        self._seen[key] = now
        gone = self._sweep(now) if now >= self._next_sweep else []
        gone += self._commands.unsent()
        if key in self._sent:
            return gone
        configs = self._configs(doc, topic)
        self._sent[key] = configs
        for config in configs:
            self._found.pop(config.topic, None)
        return gone + configs

    def reannounce(self) -> list[Announcement]:
        gone = self._sweep(self.clock())
        signals = [config for configs in self._sent.values() for config in configs]
        return gone + signals + self._commands.configs()

    def command_filters(self) -> list[str]:
        return self._commands.filters()

    def command_of(self, topic: str, payload: bytes) -> NativeCommand | None:
        return self._commands.command_of(topic, payload)

    def listens(self) -> list[str]:
        prefix = self.context.discovery_prefix
        # Its birth message, and this gateway's configs the broker kept (to find the
        # entities of signals that are gone).
        return [f"{prefix}/status", f"{prefix}/+/{_UNSAFE.sub('_', self.context.gateway)}/+/config"]

    def heard(self, topic: str, payload: bytes) -> bool:
        if not topic.endswith("/config"):
            # Home Assistant's birth message: it (re)started and reads discovery now.
            return payload.strip() == b"online"
        if not payload:
            self._found.pop(topic, None)  # removed (by us, or by hand)
        elif topic not in self._commands.config_topics and not any(
            c.topic == topic for configs in self._sent.values() for c in configs
        ):
            self._found.setdefault(topic, self.clock())
        return False

    def _sweep(self, now: float) -> list[Announcement]:
        """Removals (an empty retained config) for the signals not seen for
        ``discovery_forget_after``, and for configs found retained and never sent since."""
        forget = self.context.discovery_forget_after
        if forget is None:
            return []
        self._next_sweep = now + min(60.0, forget / 10)
        gone: list[Announcement] = []
        for key in [k for k, seen in self._seen.items() if now - seen > forget]:
            del self._seen[key]
            gone += [Announcement(c.topic, b"") for c in self._sent.pop(key, [])]
        for topic in [t for t, since in self._found.items() if now - since > forget]:
            del self._found[topic]
            gone.append(Announcement(topic, b""))
        return gone

    def _configs(self, doc: dict[str, Any], topic: str) -> list[Announcement]:
        value = doc.get("value")
        parts: list[tuple[str | None, object]] = (
            [(str(k), v) for k, v in value.items()] if isinstance(value, dict) else [(None, value)]
        )
        gateway = str(doc.get("gateway") or "tidegate")
        out = []
        for part, sample in parts:
            words = [doc["source"], doc["name"], *([part] if part else [])]
            object_id = _UNSAFE.sub("_", "_".join(words))
            reading = "value_json.value" + (f"[{orjson.dumps(part).decode()}]" if part else "")
            config: dict[str, object] = {
                "name": " ".join(words),
                "unique_id": _UNSAFE.sub("_", f"tidegate_{gateway}_{object_id}"),
                "state_topic": topic,
                "availability_topic": self.context.status_topic,
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
            if isinstance(sample, bool):
                component = "binary_sensor"
                config["value_template"] = f"{{{{ 'ON' if {reading} else 'OFF' }}}}"
            else:
                component = "sensor"
                config["value_template"] = f"{{{{ {reading} }}}}"
                unit = doc.get("unit")  # a structured value's unit is each key's
                if isinstance(unit, str) and unit:
                    config["unit_of_measurement"] = unit
                    device_class = _device_class(unit, " ".join(words))
                    if device_class is not None:
                        config["device_class"] = device_class
                if sample is None or isinstance(sample, int | float):
                    config["state_class"] = "total_increasing" if unit in TOTALS else "measurement"
            node = _UNSAFE.sub("_", gateway)
            where = f"{self.context.discovery_prefix}/{component}/{node}/{object_id}/config"
            out.append(Announcement(where, orjson.dumps(config)))
        return out


def _device_class(unit: str, name: str) -> str | None:
    if unit == "%":
        lowered = name.lower()
        if "humid" in lowered:
            return "humidity"
        if "battery" in lowered:
            return "battery"
        return None
    return DEVICE_CLASS_BY_UNIT.get(unit)
