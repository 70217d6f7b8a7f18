"""The built-in driver kinds: one line per kind (Telegraf's ``plugins/inputs/all``).

Each entry maps a ``type:`` name to the driver's config (its schema; a union of one
config per mode for a kind with modes) as ``"module:Name"``. The config names its
runtime class, imported only when a driver of that kind is built; the config
module itself is imported only when a file uses that ``type:`` (or when every
schema is wanted: ``tidegate check --schema``, the reference), so checking a
sim-only file never imports the serial, gpio or mqtt schemas. Adding a driver is
a config module, a runtime module, their tests, and one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

BUILTIN_KINDS: dict[str, str] = {
    "gpio": "tidegate.drivers.gpio.config:GpioConfig",
    "i2c": "tidegate.drivers.i2c.config:I2cConfig",
    "modbus": "tidegate.drivers.modbus.config:ModbusConfig",
    "mqtt": "tidegate.drivers.mqtt.config:MqttInputConfig",
    "onewire": "tidegate.drivers.onewire.config:OneWireConfig",
    "serial": "tidegate.drivers.serial.config:SerialConfig",
    "sim": "tidegate.drivers.sim.config:SimConfig",
}
"""``type:`` name → where its config is, as ``"module:Name"``."""


def load_declared(where: str) -> Any:
    """The object at ``"module:Name"`` (dotted names inside the module allowed)."""
    module_name, _, qualname = where.partition(":")
    found: Any = importlib.import_module(module_name)
    for attribute in qualname.split("."):
        found = getattr(found, attribute)
    return found
