"""The full path at full speed: sim driver → rules → outbox → local Mosquitto (QoS 1).

An event counts as delivered only when the broker acknowledged it. Each
scenario runs in a fresh child process (so RSS and disk writes are its own)
against a private Mosquitto, and reports:

- events/s from the first event to the last PUBACK,
- client CPU µs per event (all threads of the gateway process),
- peak RSS of the gateway process,
- bytes written to disk per event (``/proc/self/io`` write_bytes: the outbox's
  WAL and database pages), next to the average JSON payload size.

Run: ``./dev bench full_path [--events N] [--batched-events N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker
from tidegate.event import new_event
from tidegate.payload import encode_event
from tidegate.pipeline import Gateway


def _io_write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


async def _child(
    port: int, data_dir: str, events: int, per_message: int, *, inflight: int, protocol: str
) -> dict[str, float]:
    cfg = load_config_text(
        f"""
gateway: {{id: bench, data_dir: {data_dir}}}
mqtt: {{host: 127.0.0.1, port: {port}, events_per_message: {per_message}, max_inflight: {inflight},
       protocol: "{protocol}"}}
buffer: {{commit_interval: 50ms, commit_max_events: 5000}}
drivers:
  - name: fast
    type: sim
    signals:
      - {{name: power, kind: random_walk, rate: 1000000, count: {events // 2}, unit: W}}
      - {{name: pulses, kind: counter, rate: 1000000, count: {events - events // 2}}}
"""
    )
    gateway = Gateway(cfg)
    stop = asyncio.Event()
    io0 = _io_write_bytes()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    task = asyncio.create_task(gateway.run(stop))
    publisher = gateway.publisher
    assert publisher is not None
    while publisher.status.events_delivered < events:
        if task.done():
            task.result()
            raise RuntimeError("gateway stopped early")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    stop.set()
    await task
    written = _io_write_bytes() - io0
    return {
        "events": events,
        "seconds": elapsed,
        "cpu": cpu,
        "written": written,
        "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def _payload_size() -> int:
    return len(encode_event(new_event("fast", "power", 1523.4567, unit="W"), 123456, "bench"))


def _scenario(
    port: int, events: int, per_message: int, inflight: int, protocol: str
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as data_dir:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.full_path",
                "--child",
                str(port),
                data_dir,
                str(events),
                str(per_message),
                str(inflight),
                protocol,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench full_path")
    parser.add_argument("--events", type=int, default=100_000, help="events, one per message")
    parser.add_argument("--batched-events", type=int, default=1_000_000, help="events, batched")
    parser.add_argument("--inflight", type=int, default=200)
    parser.add_argument("--protocol", choices=["3.1.1", "5"], default="5")
    args = parser.parse_args(argv)
    payload = _payload_size()
    rows = []
    with tempfile.TemporaryDirectory() as workdir, LocalBroker(Path(workdir)) as broker:
        for per_message, events in (
            (1, args.events),
            (10, args.batched_events // 4),
            (100, args.batched_events),
        ):
            r = _scenario(broker.port, events, per_message, args.inflight, args.protocol)
            rows.append((per_message, r))
    print(
        f"full path, QoS 1, delivered = PUBACKed; payload ≈ {payload} B/event; "
        f"max_inflight {args.inflight}; MQTT {args.protocol}"
    )
    header = ("events/msg", "events", "events/s", "CPU µs/ev", "peak RSS", "disk B/ev")
    print("{:>10} {:>9} {:>10} {:>10} {:>9} {:>10}".format(*header))
    for per_message, r in rows:
        print(
            f"{per_message:>10} {int(r['events']):>9} {r['events'] / r['seconds']:>10,.0f} "
            f"{r['cpu'] / r['events'] * 1e6:>10.1f} {r['rss_kib'] / 1024:>7.0f}MB "
            f"{r['written'] / r['events']:>10.0f}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        port, data_dir, events, per_message, inflight, protocol = sys.argv[2:8]
        result = asyncio.run(
            _child(
                int(port),
                data_dir,
                int(events),
                int(per_message),
                inflight=int(inflight),
                protocol=protocol,
            )
        )
        print(json.dumps(result))
    else:
        main(sys.argv[1:])
