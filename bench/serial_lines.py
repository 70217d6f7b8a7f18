"""Serial driver throughput: lines/s and CPU µs per line, read from a real pty.

A separate writer process (so it does not share the GIL or the CPU account with the
driver) writes 40-byte lines into the master side of a pseudo-terminal; the real
``SerialDriver`` opens the slave by path, frames, parses and emits. The CPU figure
is this process's CPU time (the driver, its event loop and a counting ``emit``)
divided by the lines read.

Two writer modes:

- ``burst``: as fast as the pty takes it; reads come back ~4 KB (~100 lines) at a
  time, so this is the driver's ceiling;
- ``paced``: one line per write at the line rate of a 921,600-baud UART; each
  read then holds about one line, so the per-read costs (epoll, ioctl, read, one
  ``emit``) are paid per line: the realistic figure on real hardware.

Physical limits for comparison: 8N1 sends 10 bits per byte, so 40-byte lines top out
at 115,200 / 400 = 288 lines/s and 921,600 / 400 = 2,304 lines/s.

Run: ``.venv/bin/python -m bench serial_lines [--lines N] [--formats raw,kv,csv,json]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from tidegate.driver import DriverContext, DriverState
from tidegate.drivers.framing.lines import LineFramer
from tidegate.drivers.serial.config import SerialConfig
from tidegate.drivers.serial.driver import SerialDriver
from tidegate.drivers.serial.sim import SerialSim, SerialSimConfig
from tidegate.event import Event

LINE_BYTES = 40

FORMATS: dict[str, tuple[dict[str, Any], str]] = {
    # name: (parse config, one line's payload with {i} for a counter), 4 fields each
    "raw": ({"format": "raw"}, "sensor-17 reading 1{i:07d} status=ok"),
    "kv": (
        {"format": "kv", "fields": {"T": {}, "H": {}, "P": {}, "N": {"type": "int"}}},
        "T=21.50,H=40.10,P=1013.25,N=1{i:07d}",
    ),
    "csv": (
        {"format": "csv", "columns": ["t", "h", "p", "n"],
         "fields": {"t": {}, "h": {}, "p": {}, "n": {"type": "int"}}},
        "21.50,40.10,1013.25,1{i:07d}",
    ),
    "json": (
        {"format": "json", "fields": {"t": {}, "h": {}, "n": {"type": "int"}}},
        '{{"t":21.5,"h":40.1,"n":1{i:07d}}}',
    ),
}

WRITER = r"""
import os, sys, time
fd, count, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
lines = sys.stdin.buffer.read().splitlines(keepends=True)
os.set_blocking(fd, True)
if rate <= 0:
    block = b"".join(lines)
    for _ in range(count // len(lines)):
        os.write(fd, block)
else:
    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        os.write(fd, lines[i % len(lines)])
"""


def make_lines(template: str, count: int = 100) -> bytes:
    lines = []
    for i in range(count):
        text = template.format(i=i)
        lines.append(text.ljust(LINE_BYTES - 1).encode() + b"\n")
        assert len(lines[-1]) == LINE_BYTES, (text, len(lines[-1]))
    return b"".join(lines)


async def through_driver(
    parse: dict[str, Any], lines: bytes, count: int, rate: float
) -> tuple[float, float, int]:
    """Lines/s, CPU µs per line and events emitted, for ``count`` lines."""
    events = 0

    async def emit(batch: Sequence[Event]) -> None:
        nonlocal events
        events += len(batch)

    sim = SerialSim(SerialSimConfig.model_validate({"parse": parse}))
    sim.open()
    assert sim.master is not None
    config = SerialConfig.model_validate(
        {"name": "bench", "port": sim.path, "baudrate": 921600,
         "framing": {"type": "line", "max_length": 256}, "parse": parse}
    )
    driver = SerialDriver(config, DriverContext("bench", lambda raw, reason: None))
    task = asyncio.create_task(driver.run(emit))
    deadline = time.monotonic() + 10
    while driver.health.state is not DriverState.RUNNING:
        if time.monotonic() > deadline:
            raise RuntimeError("the driver did not open the pty")
        await asyncio.sleep(0.001)
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(sim.master), str(count), str(rate),
        stdin=subprocess.PIPE,
        pass_fds=(sim.master,),
    )
    assert writer.stdin is not None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    writer.stdin.write(lines)
    writer.stdin.close()
    deadline = time.monotonic() + 60 + (count / rate if rate > 0 else 0)
    while driver.frames < count:
        if time.monotonic() > deadline or writer.returncode not in (None, 0):
            raise RuntimeError(f"only {driver.frames} of {count} lines arrived")
        await asyncio.sleep(0.002)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await writer.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    sim.close()
    if driver.rejects:
        raise RuntimeError(f"{driver.rejects} lines were rejected: {driver.health.last_error}")
    return count / wall, cpu / count * 1e6, events


def framer_alone(lines: bytes, repeat: int) -> tuple[float, float]:
    """Lines/s and µs per line of the line framer on 4 KB chunks, no I/O."""
    framer = LineFramer(b"\n", max_length=256, strip_cr=True, skip_empty=True,
                        reject=lambda raw, reason: None)
    stream = lines * repeat
    chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    count = len(stream) // LINE_BYTES
    cpu0, wall0 = time.process_time(), time.perf_counter()
    found = sum(len(framer.feed(chunk)) for chunk in chunks)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert found == count
    return count / wall, cpu / count * 1e6


def main(argv: list[str]) -> None:
    options = argparse.ArgumentParser(prog="bench serial_lines", description=__doc__.split("\n")[0])
    options.add_argument("--lines", type=int, default=100_000, help="lines per burst run")
    options.add_argument("--paced-seconds", type=float, default=2.0,
                         help="length of each paced run (0 skips them)")
    options.add_argument("--formats", default=",".join(FORMATS), help="comma-separated")
    args = options.parse_args(argv)
    formats = [name for name in args.formats.split(",") if name]
    count = max(100, args.lines // 100 * 100)
    paced_rate = 921_600 / 10 / LINE_BYTES

    rows: list[tuple[str, str, str, str]] = []
    rate, micros = framer_alone(make_lines(FORMATS["raw"][1]), count // 100)
    rows.append(("line framer alone, 4 KB chunks", f"{rate:,.0f}", "-", f"{micros:.2f}"))
    for name in formats:
        parse, template = FORMATS[name]
        lines = make_lines(template)
        rate, micros, events = asyncio.run(through_driver(parse, lines, count, 0))
        rows.append((f"{name}: burst, pty", f"{rate:,.0f}", f"{events / count:g}",
                     f"{micros:.2f}"))
        if args.paced_seconds > 0:
            paced = int(paced_rate * args.paced_seconds)
            rate, micros, events = asyncio.run(through_driver(parse, lines, paced, paced_rate))
            rows.append((f"{name}: paced 2,304 lines/s, pty", f"{rate:,.0f}",
                         f"{events / paced:g}", f"{micros:.2f}"))
    rows.append(("UART 115,200 baud 8N1 limit", f"{115_200 / 10 / LINE_BYTES:,.0f}", "-", "-"))
    rows.append(("UART 921,600 baud 8N1 limit", f"{paced_rate:,.0f}", "-", "-"))

    header = ("40-byte lines through SerialDriver", "lines/s", "events/line", "CPU µs/line")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {count:,} lines per burst run")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(f"{row[0]:<{widths[0]}}  " + "  ".join(
            f"{cell:>{width}}" for cell, width in zip(row[1:], widths[1:], strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])
