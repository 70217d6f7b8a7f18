"""Modbus driver: gateway CPU per poll cycle of a 20-register block, and per reading.

The device is pymodbus's own server, in a separate process (so that its CPU is not
on the gateway's account), on a loopback TCP port or, for RTU, behind two
pseudo-terminals joined back to back (``tests/drivers/modbus/servers.py``). The real
``ModbusDriver`` polls one slave whose 20 holding registers are one read, as fast
as it can (``interval`` 0.1 ms), through pymodbus's client; the CPU figure is this
process's CPU time (``time.process_time``: the driver, pymodbus, the event loop and
a counting ``emit``) divided by the poll cycles, and by the readings they made.

Rows:

- ``pymodbus client alone``: the same read in a bare loop, no driver: the floor the
  protocol library sets;
- ``driver, N x TYPE``: the whole driver (bus lock, request, decode, events);
- ``decode only``: turning one answer into events (codec and ``Event``), no I/O.

The issue's target: a poll cycle of a 20-register block in well under 1 ms of
gateway CPU.

Run: ``./dev bench modbus_poll [--seconds S]`` (``.venv/bin/python -m bench modbus_poll``)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from tidegate.driver import DriverContext, DriverHealth, DriverState
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.driver import ModbusDriver
from tidegate.drivers.modbus.polling import Poller, schedule
from tidegate.event import Event

ROOT = Path(__file__).resolve().parent.parent

SERVER = r"""
import asyncio, sys
from tests.drivers.modbus.servers import Served, rtu_server, tcp_server

async def main(kind):
    slave = Served(1, holding=[(i * 1234 + 17) & 0xFFFF for i in range(64)])
    slave.holding[0:20] = [0x41AC, 0x0000] * 10  # 21.5 as f32, and 16812 / 0 as u16
    serve = tcp_server([slave]) if kind == "tcp" else rtu_server([slave], baudrate=115200)
    async with serve as bus:
        where = f"{bus.host}:{bus.port}" if kind == "tcp" else bus.driver_path
        print(where, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main(sys.argv[1]))
"""

LAYOUTS: dict[str, list[dict[str, Any]]] = {
    "20 x u16": [{"name": f"r{i}", "address": i, "type": "u16"} for i in range(20)],
    "20 x i16, scale 0.1": [
        {"name": f"r{i}", "address": i, "type": "i16", "scale": 0.1} for i in range(20)
    ],
    "10 x f32": [{"name": f"r{i}", "address": 2 * i, "type": "f32"} for i in range(10)],
}


class Server:
    """pymodbus's server in its own process, until ``close``."""

    def __init__(self, kind: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, kind], cwd=ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        self.where = self.process.stdout.readline().strip()
        if not self.where:
            self.process.kill()  # whatever it got to, it does not outlive the bench
            self.process.wait(10)
            raise RuntimeError("the Modbus server did not start")

    def target(self) -> dict[str, Any]:
        if self.where.startswith("/"):
            return {"port": self.where, "baudrate": 115200}
        host, _, port = self.where.rpartition(":")
        return {"host": host, "tcp_port": int(port)}

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


def config(target: dict[str, Any], registers: list[dict[str, Any]]) -> ModbusConfig:
    return ModbusConfig.model_validate(
        {"name": "bench", **target, "interval": 0.0001, "timeout": 1, "retries": 0,
         "frame_gap": 0, "devices": [{"name": "d", "slave": 1, "registers": registers}]}
    )


async def through_driver(cfg: ModbusConfig, seconds: float) -> tuple[int, float, int]:
    """Poll cycles, CPU µs per cycle, readings per cycle."""
    events = 0

    async def emit(batch: Sequence[Event]) -> None:
        nonlocal events
        events += len(batch)

    driver = ModbusDriver(cfg, DriverContext("bench", lambda raw, reason: None))
    task = asyncio.create_task(driver.run(emit))
    deadline = time.monotonic() + 10
    while driver.health.state is not DriverState.RUNNING or events == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the driver did not poll: {driver.health.last_error}")
        await asyncio.sleep(0.001)
    polls0, events0 = driver.polls, events
    cpu0 = time.process_time()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu0
    polls, readings = driver.polls - polls0, events - events0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if driver.health.errors:
        raise RuntimeError(f"errors while polling: {driver.health.last_error}")
    return polls, cpu / polls * 1e6, readings // max(polls, 1)


async def client_alone(target: dict[str, Any], seconds: float) -> tuple[int, float]:
    """Reads and CPU µs per read of pymodbus's TCP client, no driver."""
    client = AsyncModbusTcpClient(target["host"], port=target["tcp_port"], timeout=1, retries=0)
    await client.connect()
    reads, cpu0 = 0, time.process_time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        reply = await client.read_holding_registers(0, count=20, device_id=1)
        assert not reply.isError()
        reads += 1
    cpu = time.process_time() - cpu0
    client.close()
    return reads, cpu / reads * 1e6


def decode_only(registers: list[dict[str, Any]], rounds: int) -> tuple[float, int]:
    """CPU µs to turn one 20-register answer into events, and the events it makes."""
    cfg = config({"host": "127.0.0.1"}, registers)
    (group,) = schedule(cfg)
    (planned,) = group.reads
    poller = Poller("bench", DriverHealth(), lambda raw, reason: None, rtu=False)
    words = [0x41AC, 0x0000] * 10
    made = 0
    cpu0 = time.process_time()
    for _ in range(rounds):
        made = len(poller.events_of(group, planned, words, 0.0))
    return (time.process_time() - cpu0) / rounds * 1e6, made


def main(argv: list[str]) -> None:
    options = argparse.ArgumentParser(prog="bench modbus_poll", description=__doc__.split("\n")[0])
    options.add_argument("--seconds", type=float, default=2.0, help="length of each run")
    args = options.parse_args(argv)

    rows: list[tuple[str, str, str, str, str]] = []
    for kind in ("tcp", "rtu"):
        server = Server(kind)
        try:
            target = server.target()
            if kind == "tcp":
                reads, micros = asyncio.run(client_alone(target, args.seconds))
                rows.append(("tcp: pymodbus client alone, 20 registers",
                             f"{reads / args.seconds:,.0f}", "-", f"{micros:.0f}", "-"))
            for name, registers in LAYOUTS.items():
                polls, micros, per = asyncio.run(
                    through_driver(config(target, registers), args.seconds)
                )
                rows.append((f"{kind}: driver, {name}", f"{polls / args.seconds:,.0f}",
                             str(per), f"{micros:.0f}", f"{micros / per:.1f}"))
        finally:
            server.close()
    for name, registers in LAYOUTS.items():
        micros, per = decode_only(registers, 20_000)
        rows.append((f"decode only, {name}", "-", str(per), f"{micros:.1f}",
                     f"{micros / per:.2f}"))

    header = ("one slave, 20 holding registers", "polls/s", "readings/poll",
              "CPU µs/poll", "CPU µs/reading")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.seconds:g} s per run;"
          " server in its own process")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(f"{row[0]:<{widths[0]}}  " + "  ".join(
            f"{cell:>{width}}" for cell, width in zip(row[1:], widths[1:], strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])
