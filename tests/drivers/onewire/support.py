"""A onewire driver on a fake sysfs tree in a real folder, for the driver tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.drivers.harness import Probe
from tidegate.drivers.onewire.config import OneWireConfig
from tidegate.drivers.onewire.driver import OneWireDriver
from tidegate.drivers.onewire.sim import W1Tree

A, B, C = "28-0316a2795cff", "28-0316a27a11ff", "3b-0000001a2b3c"

FAST = 0.02
"""Seconds between readings in tests: many cycles while a test waits on a condition."""


def driver_on(tree: W1Tree | Path, probe: Probe, **keys: Any) -> OneWireDriver:
    """A driver reading ``tree``'s folder every FAST seconds; ``keys`` override."""
    base = tree.base if isinstance(tree, W1Tree) else tree
    config = OneWireConfig.model_validate(
        {"name": "w1", "path": str(base), "interval": FAST,
         "reconnect": {"initial_delay": FAST, "max_delay": FAST}, **keys}
    )
    return OneWireDriver(config, probe.context)


def from_sensor(probe: Probe, sensor_id: str) -> list[Any]:
    """Values of the events of one sensor, in order."""
    return [e.value for e in probe.events if (e.tags or {}).get("sensor") == sensor_id]
