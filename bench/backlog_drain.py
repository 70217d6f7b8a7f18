"""How fast a backlog drains after an outage: N events in the outbox, then the broker.

1. The backlog: the real pipeline (sim sensors → rules → outbox) runs with no
   broker until N events are committed (the time this takes is the
   no-broker acceptance rate), then stops cleanly.
2. For each ``events_per_message`` (1: one JSON object per message; 100: JSON
   arrays), a fresh process starts the gateway on a copy of that outbox with a
   local Mosquitto up, and its drivers idle. The drain rate is N divided by the
   time from the connection to the last PUBACK; "empty" is when the last
   acknowledged row was deleted from the outbox.

Run: ``./dev bench backlog_drain [--events 1000000] [--inflight 200] [--dir PATH]``.
Target (issue 5): 1,000,000 events drained in ≤ 15 s with batching.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker
from tidegate.pipeline import Gateway

PER_MESSAGE = (1, 100)


def _config(data_dir: Path, mqtt: str, signals: str) -> str:
    return f"""
gateway: {{id: bench, data_dir: {data_dir}, log_level: warning}}
{mqtt}
buffer: {{commit_interval: 50ms, commit_max_events: 5000, max_bytes: 2GB}}
drivers:
  - name: meter
    type: sim
    signals:
{signals}
"""


async def _wait(
    condition: Callable[[], bool], task: asyncio.Task[None], poll: float = 0.005
) -> float:
    """Poll ``condition`` on the gateway's own loop; the moment it held."""
    while not condition():
        if task.done():
            task.result()
            raise RuntimeError("the gateway stopped early")
        await asyncio.sleep(poll)
    return time.perf_counter()


async def build_backlog(data_dir: Path, events: int) -> float:
    """Fill the outbox with ``events`` events and no broker; returns the seconds it took."""
    half = events // 2
    cfg = load_config_text(
        _config(
            data_dir,
            "",
            f"      - {{name: power, kind: random_walk, rate: 1000000, count: {half}, unit: W}}\n"
            f"      - {{name: pulses, kind: counter, rate: 1000000, count: {events - half}}}",
        )
    )
    gateway = Gateway(cfg)
    stop = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(gateway.run(stop))
    done = await _wait(lambda: gateway.outbox.stats.accepted >= events, task, poll=0.05)
    stop.set()
    await task
    return done - t0


async def drain(data_dir: Path, port: int, per_message: int, inflight: int) -> dict[str, float]:
    cfg = load_config_text(
        _config(
            data_dir,
            f"mqtt: {{host: 127.0.0.1, port: {port}, events_per_message: {per_message}, "
            f"max_inflight: {inflight}}}",
            "      - {name: idle, kind: counter, rate: 1, count: 0}",
        )
    )
    gateway = Gateway(cfg)
    stop = asyncio.Event()
    cpu0 = time.process_time()
    task = asyncio.create_task(gateway.run(stop))
    await _wait(gateway.ready.is_set, task)
    publisher = gateway.publisher
    assert publisher is not None
    backlog = gateway.outbox.stats.depth
    connected = await _wait(lambda: publisher.status.connected, task)
    acked = await _wait(lambda: publisher.status.events_delivered >= backlog, task)
    empty = await _wait(lambda: gateway.outbox.stats.depth == 0, task)
    cpu = time.process_time() - cpu0
    stop.set()
    await task
    return {
        "events": backlog,
        "acked_s": acked - connected,
        "empty_s": empty - connected,
        "cpu_s": cpu,
        "messages": publisher.status.messages_delivered,
    }


def _copy_outbox(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for suffix in ("", "-wal"):
        file = Path(f"{source}/outbox.db{suffix}")
        if file.exists():
            shutil.copyfile(file, target / file.name)


def _child(argv: list[str]) -> None:
    data_dir, port, per_message, inflight = argv
    result = asyncio.run(drain(Path(data_dir), int(port), int(per_message), int(inflight)))
    print(json.dumps(result))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench backlog_drain")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--inflight", type=int, default=200, help="mqtt.max_inflight")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where outboxes live")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="tidegate-backlog-", dir=args.dir) as tmp:
        work = Path(tmp)
        built = asyncio.run(build_backlog(work / "backlog", args.events))
        size = (work / "backlog" / "outbox.db").stat().st_size
        with LocalBroker(work / "broker") as broker:
            for per_message in PER_MESSAGE:
                copy = work / f"drain-{per_message}"
                _copy_outbox(work / "backlog", copy)
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.backlog_drain",
                        "--child",
                        str(copy),
                        str(broker.port),
                        str(per_message),
                        str(args.inflight),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results.append((per_message, json.loads(out.stdout.strip().splitlines()[-1])))
                shutil.rmtree(copy)
    print(
        f"backlog drain: {args.events:,} events built with no broker in {built:.1f} s "
        f"({args.events / built:,.0f} events/s; file {size / 1e6:.0f} MB), "
        f"then drained to a local Mosquitto, QoS 1, max_inflight {args.inflight}"
    )
    header = ("events/msg", "events", "to PUBACK", "events/s", "empty after", "CPU s", "messages")
    print("{:>10} {:>9} {:>10} {:>10} {:>12} {:>7} {:>9}".format(*header))
    for per_message, r in results:
        print(
            f"{per_message:>10} {int(r['events']):>9,} {r['acked_s']:>9.1f}s "
            f"{r['events'] / r['acked_s']:>10,.0f} {r['empty_s']:>11.1f}s {r['cpu_s']:>7.1f} "
            f"{int(r['messages']):>9,}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main(sys.argv[1:])
