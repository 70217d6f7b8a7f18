"""The onewire driver's case for tests/drivers/test_conformance.py: a discovering
driver on a fake sysfs tree in a real folder.

The tree starts empty (a bus with no sensor yet); ``feed`` plugs in a sensor with
a good reading, ``garbage`` gives it a reading whose CRC line says NO and, once
the driver rejected that one, a good one: the driver reads every 50 ms, and the
rewrite happens before its next read (both wait on the same event loop, the
rewrite's wait ends first).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.drivers.harness import Probe, eventually
from tidegate.driver import DriverState
from tidegate.drivers.onewire.config import OneWireConfig
from tidegate.drivers.onewire.driver import OneWireDriver
from tidegate.drivers.onewire.sim import W1Tree

if TYPE_CHECKING:
    from tests.drivers.test_conformance import Live

SENSOR = "28-0316a2795cff"


def absent_onewire(tmp_path: Path) -> dict[str, Any]:
    """A config whose bus folder is not there (the w1 overlay not loaded)."""
    return {"name": "onewire", "path": str(tmp_path / "no-w1" / "devices"),
            "reconnect": {"initial_delay": "10ms"}}


@asynccontextmanager
async def live_onewire(request: pytest.FixtureRequest, probe: Probe) -> AsyncIterator[Live]:
    from tests.drivers.test_conformance import Live  # noqa: PLC0415 (it imports this module)

    tmp_path: Path = request.getfixturevalue("tmp_path")
    tree = W1Tree(tmp_path / "devices")
    config = OneWireConfig.model_validate(
        {"name": "onewire", "path": str(tree.base), "interval": "50ms"}
    )
    driver = OneWireDriver(config, probe.context)

    async def running() -> None:
        await eventually(lambda: driver.health.state is DriverState.RUNNING, "running")

    async def reading() -> None:
        await running()
        tree.write(SENSOR, 21.5)

    async def garbage() -> None:
        await running()
        tree.crc_error(SENSOR)
        await eventually(lambda: len(probe.rejects) >= 1, "the damaged reading read")
        tree.write(SENSOR, 21.5)

    yield Live(driver, reading, garbage)
