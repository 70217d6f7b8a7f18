"""i2c driver: gateway CPU per reading for each chip profile, on the simulated bus.

The real ``I2cDriver`` reads one simulated chip (``SimulatedBus``) as often as
the chip allows (``interval`` shorter than the conversion time, so each reading
starts as soon as the last one ended) for ``--seconds`` per profile. The
process's CPU time (event loop, the bus thread, a counting ``emit``) is divided
by the readings (one measurement of the chip; it can give several events). The
simulated chip's own work happens on the bus thread too; it is timed inside each
bus call (``thread_time``) and subtracted, so the "gateway" column is the
driver, its profile code and the thread hops. On a Pi, each transaction then
adds the kernel's ``ioctl`` and the wire time (at 100 kHz, ~0.1 ms per byte),
which this does not include.

Run: ``./dev bench i2c_read [--seconds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from tidegate.driver import DriverContext
from tidegate.drivers.i2c.chips.base import Bus
from tidegate.drivers.i2c.config import I2cConfig
from tidegate.drivers.i2c.driver import I2cDriver
from tidegate.drivers.i2c.sim_bus import SimChip, SimulatedBus
from tidegate.drivers.i2c.sim_chips import Ads1115Sim, Bh1750Sim, Bme280Sim, RegisterSim, Sht3xSim
from tidegate.event import Event

PROFILES: dict[str, tuple[dict[str, Any], Callable[[], SimChip]]] = {
    "bme280": ({"chip": "bme280", "address": 0x76}, lambda: Bme280Sim(21.5, 1013.25, 45.0)),
    "sht3x": ({"chip": "sht3x", "address": 0x44}, lambda: Sht3xSim(21.5, 45.0)),
    "ads1115 (2 ch)": (
        {"chip": "ads1115", "address": 0x48, "data_rate": 860, "channels": [
            {"name": "a0", "input": "AIN0"}, {"name": "d23", "input": "AIN2-AIN3"}]},
        lambda: Ads1115Sim((1.2, 0.5, 0.3, 0.1)),
    ),
    "bh1750": ({"chip": "bh1750", "address": 0x23}, lambda: Bh1750Sim(300.0)),
    "generic (4 regs)": (
        {"address": 0x29, "registers": [
            {"name": f"r{i}", "register": 0x10 + 2 * i, "type": "u16", "scale": 0.1}
            for i in range(4)]},
        lambda: RegisterSim({0x10: bytes(range(1, 9))}),
    ),
}


class TimedBus(SimulatedBus):
    """A simulated bus that keeps the CPU time spent inside its calls (the chip's share)."""

    sim_cpu = 0.0
    calls = 0

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if name.startswith("_") or not callable(found) or name in ("open", "close"):
            return found

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return found(*args, **kwargs)
            finally:
                TimedBus.sim_cpu += time.thread_time() - start
                TimedBus.calls += 1

        return timed


async def run_profile(device: dict[str, Any], chip: SimChip, seconds: float) -> dict[str, float]:
    bus = TimedBus({device["address"]: chip})

    def opener() -> Bus:
        bus.open()
        return bus

    config = I2cConfig.model_validate(
        {"name": "bench", "bus": 1, "interval": "1ms", "devices": [{"name": "d", **device}]}
    )
    events = 0

    async def emit(batch: Sequence[Event]) -> None:
        nonlocal events
        events += len(batch)

    driver = I2cDriver(config, DriverContext("bench", lambda raw, reason: None), bus=opener)
    task = asyncio.create_task(driver.run(emit))
    await asyncio.sleep(0.5)  # warm-up: the bus open, the first readings
    TimedBus.sim_cpu, TimedBus.calls = 0.0, 0
    first_events, first_cpu, start = events, time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - first_cpu, time.monotonic() - start
    sim_cpu, calls = TimedBus.sim_cpu, TimedBus.calls
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    per_reading = len(device.get("channels", device.get("registers", [])))
    readings = (events - first_events) / {"bme280": 3, "sht3x": 2, "bh1750": 1}.get(
        device.get("chip", ""), per_reading or 1)
    return {"readings": readings, "per_s": readings / wall, "cpu_us": cpu / readings * 1e6,
            "sim_us": sim_cpu / readings * 1e6, "calls": calls / readings,
            "errors": driver.health.errors}


def main(argv: list[str]) -> None:
    options = argparse.ArgumentParser(prog="bench i2c_read", description=__doc__.split("\n")[0])
    options.add_argument("--seconds", type=float, default=3.0, help="run time per profile")
    args = options.parse_args(argv)
    rows = [("profile", "readings/s", "bus calls", "CPU µs/reading", "sim µs", "gateway µs")]
    for name, (device, make) in PROFILES.items():
        result = asyncio.run(run_profile(device, make(), args.seconds))
        if result["errors"]:
            print(f"{name}: {result['errors']:.0f} errors during the run", file=sys.stderr)
        rows.append((name, f"{result['per_s']:.0f}", f"{result['calls']:.0f}",
                     f"{result['cpu_us']:.0f}", f"{result['sim_us']:.0f}",
                     f"{result['cpu_us'] - result['sim_us']:.0f}"))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.seconds:g} s per profile")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  " + "  ".join(
            f"{cell:>{width}}" for cell, width in zip(row[1:], widths[1:], strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])
