"""config/energy-meter-modbus.yaml: with `port: sim` (the one line a laptop changes)
the real driver reads every register of its map from the simulated meter."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.drivers.harness import Probe, running
from tidegate.config.loader import load_config_text
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.driver import ModbusDriver

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "energy-meter-modbus.yaml"


def test_the_energy_meter_example_runs_on_the_simulated_bus() -> None:
    text = EXAMPLE.read_text()
    real_port = "port: /dev/serial/by-id/usb-FTDI_USB_RS485_Cable_FT0A1B2C-if00-port0"
    assert real_port in text
    config = load_config_text(text.replace(real_port, "port: sim"), str(EXAMPLE))
    (driver_config,) = config.drivers
    assert isinstance(driver_config, ModbusConfig) and driver_config.simulated
    meter = driver_config.devices[0]
    names = {f"{meter.name}.{r.name}" for r in meter.registers}

    async def scenario() -> None:
        probe = Probe()
        driver = ModbusDriver(driver_config, probe.context)
        async with running(driver, probe):
            await probe.wait_for_events(len(names))
        first = {e.name: e for e in probe.events[: len(names)]}
        assert set(first) == names
        assert 215 < first["sdm120.voltage"].value < 245  # type: ignore[operator]
        voltage = first["sdm120.voltage"]
        assert voltage.unit == "V" and voltage.tags == {"device": "sdm120"}
        assert 49.9 < first["sdm120.frequency"].value < 50.1  # type: ignore[operator]
        assert 1520.5 <= first["sdm120.import_energy"].value < 1521  # type: ignore[operator]
        assert (driver.health.errors, probe.rejects) == (0, [])

    asyncio.run(scenario())
