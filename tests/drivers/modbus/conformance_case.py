"""The modbus driver's case for tests/drivers/test_conformance.py: the driver polling
pymodbus's own TCP server on a free loopback port.

The driver polls by itself, so ``feed`` only waits until it runs; ``garbage`` makes
the slave answer the next request with an exception (device busy), which the driver
must count and hand to ``reject`` with the exception PDU, then poll on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
from pymodbus.constants import ExcCodes

from tests.drivers.harness import Probe, eventually
from tests.drivers.modbus.servers import Served, tcp_server
from tidegate.demo.local_broker import free_port
from tidegate.driver import DriverState
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.driver import ModbusDriver

if TYPE_CHECKING:
    from tests.drivers.test_conformance import Live

DEVICES = [{"name": "meter", "slave": 1,
            "registers": [{"name": "t", "address": 0, "type": "i16", "scale": 0.1}]}]


def absent_modbus() -> dict[str, Any]:
    """A config whose Modbus TCP device is not there (nothing listens on the port)."""
    return {"name": "modbus", "host": "127.0.0.1", "tcp_port": free_port(), "timeout": 0.2,
            "reconnect": {"initial_delay": "10ms"}, "devices": DEVICES}


@asynccontextmanager
async def live_modbus(request: pytest.FixtureRequest, probe: Probe) -> AsyncIterator[Live]:
    from tests.drivers.test_conformance import Live  # noqa: PLC0415 (it imports this module)

    meter = Served(1)
    meter.holding[0] = 215
    async with tcp_server([meter]) as server:
        config = ModbusConfig.model_validate(
            {"name": "modbus", "host": server.host, "tcp_port": server.port,
             "interval": "20ms", "timeout": 0.5, "devices": DEVICES}
        )
        driver = ModbusDriver(config, probe.context)

        async def reading() -> None:
            await eventually(lambda: driver.health.state is DriverState.RUNNING, "running")

        async def garbage() -> None:
            await reading()
            meter.refuse_next = ExcCodes.DEVICE_BUSY

        yield Live(driver, reading, garbage)
