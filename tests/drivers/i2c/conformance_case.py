"""The i2c driver's case for tests/drivers/test_conformance.py: ``bus: sim`` with one
SHT3x, read every 50 ms through the real driver code.

``feed`` only waits for the driver to run (the chip is polled, it needs no
prompting); ``garbage`` makes the simulated chip send its next result with a
corrupted CRC, which the driver must reject with the six bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.drivers.harness import Probe, eventually
from tidegate.driver import DriverState
from tidegate.drivers.i2c.config import I2cConfig
from tidegate.drivers.i2c.driver import I2cDriver
from tidegate.drivers.i2c.sim_chips import Sht3xSim

if TYPE_CHECKING:
    from tests.drivers.test_conformance import Live


def absent_i2c(tmp_path: Path) -> dict[str, Any]:
    """A config whose bus is not there (I²C not enabled: no /dev/i2c-N)."""
    return {"name": "i2c", "bus": str(tmp_path / "i2c-77"), "devices": [{"name": "t",
            "chip": "sht3x"}], "reconnect": {"initial_delay": "10ms"}}


@asynccontextmanager
async def live_i2c(request: pytest.FixtureRequest, probe: Probe) -> AsyncIterator[Live]:
    from tests.drivers.test_conformance import Live  # noqa: PLC0415 (it imports this module)

    config = I2cConfig.model_validate({
        "name": "i2c", "bus": "sim", "interval": "50ms",
        "devices": [{"name": "shed", "chip": "sht3x", "address": 0x44}],
    })
    driver = I2cDriver(config, probe.context)

    async def running() -> None:
        await eventually(lambda: driver.health.state is DriverState.RUNNING, "running")

    async def garbage() -> None:
        await running()
        assert driver.sim_bus is not None
        chip = driver.sim_bus.chips[0x44]
        assert isinstance(chip, Sht3xSim)
        chip.bad_crc_next = 1

    yield Live(driver, running, garbage)
