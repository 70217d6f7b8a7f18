"""``path: sim``: the driver builds a fake sysfs tree and a simulator writes it; the
real reading code turns it into events, rejects and stale sensors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from tests.drivers.harness import Probe, eventually, running
from tidegate.drivers.onewire.config import OneWireConfig
from tidegate.drivers.onewire.driver import OneWireDriver
from tidegate.drivers.onewire.sim import MASTER, simulated_ids

NAME = f"loft{os.getpid()}"
"""The driver's name, which its temporary folder carries: unique to this run."""


def sim_driver(probe: Probe, **sim: Any) -> OneWireDriver:
    config = OneWireConfig.model_validate(
        {"name": NAME, "path": "sim", "interval": 0.02,
         "sim": {"seed": 7, "update": 0.01, **sim}}
    )
    return OneWireDriver(config, probe.context)


def sim_folders() -> list[Path]:
    """The simulated buses' folders there are now (``tidegate-w1-<name>-…``)."""
    return sorted(Path(tempfile.gettempdir()).glob(f"tidegate-w1-{NAME}-*"))


def test_the_simulated_bus_is_read_like_the_real_one_and_removed_after() -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = sim_driver(probe, sensors=3, base=4.0, amplitude=1.0, noise=0.0)
        async with running(driver, probe):
            await eventually(lambda: len({e.name for e in probe.events}) == 3, "3 sensors")
            (base,) = sim_folders()
            assert (base / MASTER / "w1_master_slaves").is_file()
            slaves = (base / MASTER / "w1_master_slaves").read_text().split()
            assert slaves == sorted({e.name for e in probe.events})
        assert all(3.0 <= e.value <= 5.0 for e in probe.events if isinstance(e.value, float))
        assert all(e.unit == "°C" for e in probe.events)
        assert probe.rejects == []
        assert not base.exists()

    asyncio.run(scenario())


def test_injected_faults_are_rejected_and_counted_by_the_real_driver() -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = sim_driver(probe, sensors=2, faults={
            "crc_error": 0.15, "power_on_85": 0.15, "stuck_low": 0.15, "read_failed": 0.15,
            "vanish_every": 0.05, "vanish_for": 0.05})
        counters = driver.health.counters
        async with running(driver, probe):
            await eventually(
                lambda: all(counters.get(name, 0) >= 1 for name in (
                    "crc_error", "power_on_85", "stuck_low", "read_failed", "vanished",
                    "returned")),
                "every fault seen, and a sensor back",
            )
            await probe.wait_for_events(5)
        rejected = sum(counters[name] for name in ("crc_error", "power_on_85", "stuck_low"))
        assert rejected == len(probe.rejects)
        assert 85.0 not in {e.value for e in probe.events}
        assert 0.0 not in {e.value for e in probe.events}

    asyncio.run(scenario())


def test_a_driver_cancelled_as_it_starts_leaves_no_simulator_behind() -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = sim_driver(probe)
        before = set(asyncio.all_tasks())
        task = asyncio.create_task(driver.run(probe.emit))
        await asyncio.sleep(0)  # run() has started the simulator and yielded once
        assert len(sim_folders()) == 1
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert set(asyncio.all_tasks()) == before
        assert sim_folders() == []

    asyncio.run(scenario())


def test_listed_sensors_are_on_the_simulated_bus_too() -> None:
    config = OneWireConfig.model_validate(
        {"name": "x", "path": "sim", "sensors": [{"id": "3b-0000001a2b3c", "name": "flue"}],
         "sim": {"sensors": ["28-0000000005e1", "3B-0000001A2B3C"]}}
    )
    assert simulated_ids(config) == ["3b-0000001a2b3c", "28-0000000005e1"]
    assert simulated_ids(config.model_copy(update={"sim": config.sim.model_copy(
        update={"sensors": 2})})) == ["3b-0000001a2b3c", "28-0000000005e1", "28-0000000005e2"]
