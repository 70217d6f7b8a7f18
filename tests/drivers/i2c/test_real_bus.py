"""The driver on a real /dev/i2c-N: the kernel's i2c-stub adapter, where it can be loaded.

``sudo modprobe i2c-stub chip_addr=0x29`` makes a bus whose chip at 0x29 is a
256-byte register file; the driver reads it through smbus2 exactly as it reads a
chip on a Pi. Containers without kernel modules skip this test.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from smbus2 import SMBus

from tests.drivers.harness import Probe, running
from tests.drivers.i2c.support import config
from tidegate.drivers.i2c.driver import I2cDriver


def stub_bus() -> int | None:
    """The number of an i2c-stub adapter, if one is loaded."""
    for adapter in sorted(Path("/sys/class/i2c-adapter").glob("i2c-*")):
        name = adapter / "name"
        if name.exists() and name.read_text().strip() == "SMBus stub driver":
            number = int(adapter.name.removeprefix("i2c-"))
            if Path(f"/dev/i2c-{number}").exists():
                return number
    return None


def test_generic_registers_on_a_real_adapter() -> None:
    number = stub_bus()
    if number is None:
        pytest.skip("no i2c-stub adapter (modprobe i2c-stub chip_addr=0x29; not loadable here)")
    with SMBus(number) as bus:
        bus.write_i2c_block_data(0x29, 0x10, [0x01, 0x2C, 0xFF, 0x38])

    async def scenario() -> Probe:
        probe = Probe()
        devices = [{"name": "stub", "address": 0x29, "registers": [
            {"name": "count", "register": 0x10, "type": "u16", "scale": 0.1},
            {"name": "signed", "register": 0x12, "type": "i16"}]}]
        driver = I2cDriver(config(devices, bus=number), probe.context)
        async with running(driver, probe):
            await probe.wait_for_events(2)
        return probe

    probe = asyncio.run(scenario())
    assert probe.values()[:2] == [("stub.count", 30.0), ("stub.signed", -200)]
