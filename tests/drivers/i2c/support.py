"""Helpers for the i2c tests: a hand-moved clock for the chip simulations, a profile
run step by step on it, and the real driver on a ``SimulatedBus``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from tests.drivers.harness import Probe, eventually, running
from tidegate.driver import DriverState
from tidegate.drivers.i2c.chips.base import Bus, Chip, Reading
from tidegate.drivers.i2c.config import I2cConfig
from tidegate.drivers.i2c.driver import I2cDriver
from tidegate.drivers.i2c.sim_bus import SimulatedBus


class ManualClock:
    """Time that moves only when told: a chip's conversion is over when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def measure(chip: Chip, bus: Bus, clock: ManualClock | None = None) -> list[Reading]:
    """One measurement of ``chip``, each yielded wait passed on ``clock``."""
    steps = chip.measure(bus)
    try:
        while True:
            wait = next(steps)
            if clock is not None:
                clock.advance(wait)
    except StopIteration as done:
        readings: list[Reading] = done.value
        return readings


def config(devices: list[dict[str, Any]], **overrides: Any) -> I2cConfig:
    return I2cConfig.model_validate(
        {"name": "env", "bus": 1, "interval": "30ms", "devices": devices,
         "reconnect": {"initial_delay": "10ms", "max_delay": "50ms"}, **overrides}
    )


def reopening(bus: SimulatedBus) -> Callable[[], Bus]:
    """An opener for the driver: the same simulated bus, opened again each time."""

    def opener() -> Bus:
        bus.open()
        return bus

    return opener


@asynccontextmanager
async def driver_on(
    bus: SimulatedBus, devices: list[dict[str, Any]], probe: Probe, **overrides: Any
) -> AsyncIterator[I2cDriver]:
    """The real driver reading ``bus`` until the block ends; then it must stop cleanly."""
    driver = I2cDriver(config(devices, **overrides), probe.context, bus=reopening(bus))
    async with running(driver, probe):
        await eventually(lambda: driver.health.state is DriverState.RUNNING, "the bus open")
        yield driver


def values(probe: Probe, name: str) -> list[Any]:
    return [e.value for e in probe.events if e.name == name]
