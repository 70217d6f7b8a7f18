"""What the local history costs: events/s it takes, bytes written and CPU per event.

Run: ``./dev bench history [--events N]``.

Events from 100 signals (numbers, as sensors send them) are fed the way the
gateway feeds them: the event loop's part (the ``EventTap`` handing routed
batches of 1,000 to the history's subscription) and the writer thread's part
(numbers out of the events, raw rows, 1 min and 15 min buckets with numpy,
retention, the byte bound: one transaction per flush), measured apart. Flush
sizes stand for ``flush_interval`` at 1,000 events/s: 1 s, 10 s, 30 s.
Bytes are ``/proc/self/io`` write_bytes (the WAL and the checkpoints).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tidegate.event import Event
from tidegate.history.samples import Batch, SignalFilter, collect
from tidegate.history.store import HistoryStore, Tier
from tidegate.ops.tap import EventTap
from tidegate.outgoing import Outgoing

SIGNALS = 100
RATE = 1000.0


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def events(n: int, start: float) -> list[Outgoing]:
    return [
        Outgoing(
            Event(
                f"s{i % SIGNALS}",
                "temperature",
                20.0 + (i % 97) / 10,
                time=start + i / RATE,
                unit="°C",
            ),
            "t",
            1,
            False,
        )
        for i in range(n)
    ]


def loop_side(items: list[Outgoing]) -> float:
    """µs of event-loop CPU per event: tap publish + the history's take."""

    async def run() -> float:
        tap = EventTap()
        subscription = tap.subscribe(capacity=len(items) + 1)
        taken: list[Outgoing] = []
        began = time.process_time()
        for at in range(0, len(items), 1000):
            tap.publish(items[at : at + 1000])
            taken.extend(await subscription.next_batch())
        return (time.process_time() - began) / len(items) * 1e6

    return asyncio.run(run())


def writer_side(items: list[Outgoing], per_flush: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = HistoryStore(
            Path(folder) / "history.db",
            6 * 3600,
            [Tier(60, 86400), Tier(900, 30 * 86400)],
            64_000_000,
        )
        store.open()
        wanted = SignalFilter(["*"])
        bytes_before = written_bytes()
        cpu, wall = time.process_time(), time.perf_counter()
        for at in range(0, len(items), per_flush):
            batch = Batch()
            chunk = items[at : at + per_flush]
            collect(chunk, wanted, batch)
            store.write(batch, chunk[-1].event.time)
        store.close()
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        written = written_bytes() - bytes_before
    return len(items) / wall, written / len(items), cpu / len(items) * 1e6


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="./dev bench history")
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args(argv)
    items = events(args.events, time.time() - args.events / RATE)
    print(f"history: {args.events:,} events from {SIGNALS} signals, tiers raw 6h, 1m, 15m")
    print(f"event loop's part (tap → history): {loop_side(items):.2f} µs CPU/event")
    print(f"{'flush (at 1,000/s)':>20} {'events/s':>10} {'B written/ev':>13} {'CPU µs/ev':>10}")
    for seconds in (1, 10, 30):
        rate, written, cpu = writer_side(items, int(seconds * RATE))
        print(
            f"{f'{seconds} s = {int(seconds * RATE):,} ev':>20} {rate:>10,.0f} "
            f"{written:>13.1f} {cpu:>10.2f}"
        )
