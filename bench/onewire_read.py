"""1-Wire driver: gateway CPU per reading, over a fake sysfs tree.

A ``W1Tree`` in a temporary folder holds N sensors (10 by default) whose
``w1_slave`` files are written like the kernel's; the real ``OneWireDriver`` reads
them as fast as it can (a 1 µs interval) until it has emitted the readings asked
for. The figure is this process's CPU time (``time.process_time``: the driver, its
worker-thread hops, the parser, event building and a counting ``emit``) divided by
the readings. Rows:

- ``parse``: ``parse_w1_slave`` alone on one kernel sample;
- ``read+parse``: open, read and parse one file, no event loop;
- ``driver``: the whole driver, one ``asyncio.to_thread`` hop per sensor read.

On a Pi each read also blocks ~750 ms in the kernel for the conversion: that is
waiting, not gateway CPU, and it bounds a bus to about 1.3 readings per second.

Run: ``./dev bench onewire_read [--sensors N] [--readings N]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tidegate.driver import DriverContext
from tidegate.drivers.onewire.config import OneWireConfig
from tidegate.drivers.onewire.driver import OneWireDriver
from tidegate.drivers.onewire.sim import W1Tree
from tidegate.drivers.onewire.sysfs import parse_w1_slave, read_w1_slave
from tidegate.event import Event

SAMPLE = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"


def cpu_per_call(work: Callable[[], object], calls: int) -> float:
    """Median-free but warm: µs of CPU per call over ``calls`` calls after a warm-up."""
    for _ in range(min(calls, 1000)):
        work()
    start = time.process_time()
    for _ in range(calls):
        work()
    return (time.process_time() - start) / calls * 1e6


def driver_run(base: Path, readings: int) -> tuple[float, float]:
    """µs of CPU per reading and readings per second of wall time, the whole driver."""
    config = OneWireConfig.model_validate({"name": "bench", "path": str(base),
                                           "interval": 1e-6})
    emitted = 0
    done = asyncio.Event()

    async def emit(batch: Sequence[Event]) -> None:
        nonlocal emitted
        emitted += len(batch)
        if emitted >= readings:
            done.set()

    async def scenario() -> tuple[float, float]:
        driver = OneWireDriver(config, DriverContext("bench", lambda raw, reason: None))
        task = asyncio.create_task(driver.run(emit))
        wall, cpu = time.perf_counter(), time.process_time()
        await done.wait()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return cpu / emitted * 1e6, emitted / wall

    return asyncio.run(scenario())


def main(argv: list[str]) -> None:
    options = argparse.ArgumentParser(prog="bench onewire_read",
                                      description=(__doc__ or "").split("\n")[0])
    options.add_argument("--sensors", type=int, default=10)
    options.add_argument("--readings", type=int, default=20_000)
    args = options.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-w1-") as folder:
        tree = W1Tree(Path(folder))
        ids = [f"28-0000000{i:05x}" for i in range(args.sensors)]
        for n, sensor_id in enumerate(ids):
            tree.write(sensor_id, 20 + n / 16)
        one = tree.folder(ids[0])
        rows = [
            ("parse", cpu_per_call(lambda: parse_w1_slave(SAMPLE), args.readings), None),
            ("read+parse", cpu_per_call(lambda: parse_w1_slave(read_w1_slave(one)),
                                        args.readings), None),
            ("driver", *driver_run(Path(folder), args.readings)),
        ]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{args.sensors} sensors, {args.readings:,} readings per row")
    print(f"{'what':<12}  {'CPU µs/reading':>14}  {'readings/s':>10}")
    for what, cpu, rate in rows:
        shown = f"{rate:,.0f}" if rate is not None else "-"
        print(f"{what:<12}  {cpu:>14.1f}  {shown:>10}")
