"""What a second uplink costs: the full path (sim → rules → outbox → Mosquitto, QoS 1)
with one uplink and with two on the same broker, each run in a child process of its own.

An event counts as delivered when every uplink's broker acknowledged it; the CPU per
event is the gateway process's (all threads). With two uplinks every event goes out
twice, is read back from the file by each (no memory cache: ``tidegate.outbox.shares``)
and leaves the outbox after the second acknowledgement. Figures only, nothing asserted.

Run: ``./dev bench uplinks [--events N] [--rounds K]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench._child import run_child
from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker
from tidegate.pipeline import Gateway


def _uplinks(port: int, count: int, per_message: int) -> str:
    names = ["first", "second"][:count]
    return "uplinks:\n" + "".join(
        f"  - {{name: {n}, host: 127.0.0.1, port: {port}, events_per_message: {per_message}, "
        f"protocol: '5', topic_prefix: bench/{n}}}\n"
        for n in names
    )


async def _child(
    port: int, data_dir: str, events: int, uplinks: int, per_message: int
) -> dict[str, float]:
    gateway = Gateway(
        load_config_text(
            f"gateway: {{id: bench, data_dir: {data_dir}}}\n"
            + _uplinks(port, uplinks, per_message)
            + f"""buffer: {{commit_interval: 50ms, commit_max_events: 1000}}
drivers:
  - name: fast
    type: sim
    signals: [{{name: power, kind: random_walk, rate: 1000000, count: {events}, unit: W}}]
"""
        )
    )
    stop = asyncio.Event()
    cpu0, t0 = time.process_time(), time.perf_counter()
    task = asyncio.create_task(gateway.run(stop))
    while min(p.status.events_delivered for p in gateway.publishers) < events:
        if task.done():
            task.result()
            raise RuntimeError("gateway stopped early")
        await asyncio.sleep(0.01)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stop.set()
    await task
    return {
        "seconds": elapsed,
        "cpu": cpu,
        "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def _run(port: int, events: int, uplinks: int, per_message: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as data_dir:
        return run_child("bench.uplinks", "--child", port, data_dir, events, uplinks, per_message)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench uplinks")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternated runs; the median shows")
    args = parser.parse_args(argv)
    print(
        f"one uplink vs two on the same broker: {args.events:,} events, QoS 1, MQTT 5; "
        f"median of {args.rounds} alternated run(s)"
    )
    print(
        "{:>10} {:>8} {:>10} {:>11} {:>9}".format(
            "events/msg", "uplinks", "events/s", "CPU µs/ev", "peak RSS"
        )
    )
    with tempfile.TemporaryDirectory() as workdir, LocalBroker(Path(workdir)) as broker:
        for per_message in (1, 100):
            runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
            for _ in range(max(1, args.rounds)):
                for uplinks in (1, 2):
                    runs[uplinks].append(_run(broker.port, args.events, uplinks, per_message))
            cpu = {}
            for uplinks, rs in runs.items():
                r = sorted(rs, key=lambda x: x["cpu"])[len(rs) // 2]
                cpu[uplinks] = r["cpu"] / args.events * 1e6
                print(
                    f"{per_message:>10} {uplinks:>8} {args.events / r['seconds']:>10,.0f} "
                    f"{cpu[uplinks]:>11.1f} {r['rss_kib'] / 1024:>7.0f}MB"
                )
            print(f"{'':>10} {'':>8} {'2 / 1':>10} {cpu[2] / cpu[1]:>10.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        port, data_dir, events, uplinks, per_message = sys.argv[2:7]
        result = asyncio.run(
            _child(int(port), data_dir, int(events), int(uplinks), int(per_message))
        )
        print(json.dumps(result))
    else:
        main(sys.argv[1:])
