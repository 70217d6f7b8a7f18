"""Latency of the full path at a steady rate: a sim event's due time → its PUBACK.

Issue 12's goal: at 1,000 events/s with 50 ms group commits, p99 ≤ 60 ms.

How it is measured, in a child process of its own with the bench's gateway
(sim driver → rules → outbox → local Mosquitto, QoS 1, one event per message):

- start: the event's ``time``. The sim driver stamps each event with the time
  it was due and emits it when it wakes (at least every 2 ms at this rate), so
  the figure includes the driver's own lag: it is an upper bound of emit → PUBACK.
- end: the wall-clock time at which the publisher hands the acknowledged
  message to its ``Deliveries.acked`` (called from paho's PUBACK callback).
  The bench wraps that one method of the running gateway's publisher to take
  the time and keep the payload; the times are parsed after the run.
- the first second is left out (connecting, first commit).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from bench._child import run_child
from tidegate.config.loader import load_config_text
from tidegate.pipeline import Gateway
from tidegate.uplink.batches import Message

WARMUP = 1.0
"""Seconds at the start that are not counted."""


async def _child(port: int, data_dir: str, rate: int, seconds: float) -> dict[str, float]:
    events = int(rate * seconds)
    cfg = load_config_text(
        f"""
gateway: {{id: bench, data_dir: {data_dir}}}
mqtt: {{host: 127.0.0.1, port: {port}, events_per_message: 1, max_inflight: 200}}
buffer: {{commit_interval: 50ms, commit_max_events: 5000}}
drivers:
  - name: steady
    type: sim
    signals:
      - {{name: power, kind: random_walk, rate: {rate}, count: {events}, unit: W}}
"""
    )
    gateway = Gateway(cfg)
    publisher = gateway.publisher
    assert publisher is not None
    deliveries = publisher._deliveries
    acked_now = deliveries.acked
    seen: list[tuple[float, bytes]] = []
    # A message lets go of its payloads once paho has them: keep each one's first.
    window = publisher._window
    publish_now = window.publish
    first_payload: dict[int, bytes] = {}

    def noted_publish(client: Any, messages: Sequence[Message]) -> str | None:
        for msg in messages:
            first_payload[msg.ids[0]] = msg.payloads[0]
        return publish_now(client, messages)

    def timed_acked(msg: Message) -> None:
        # One clock read and one append per PUBACK: the parsing waits until the end.
        seen.append((time.time(), first_payload.pop(msg.ids[0])))
        acked_now(msg)

    window.publish = noted_publish  # type: ignore[method-assign]
    deliveries.acked = timed_acked  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    while publisher.status.events_delivered < events:
        if task.done():
            task.result()
            raise RuntimeError("gateway stopped early")
        await asyncio.sleep(0.05)
    stop.set()
    await task
    start = min(_event_time(p) for _, p in seen)
    latencies = sorted(
        acked_at - t for acked_at, p in seen if (t := _event_time(p)) >= start + WARMUP
    )
    return {
        "rate": rate,
        "counted": len(latencies),
        "p50": _percentile(latencies, 0.50),
        "p99": _percentile(latencies, 0.99),
        "max": latencies[-1],
    }


def _event_time(payload: bytes) -> float:
    doc = orjson.loads(payload)
    return datetime.fromisoformat(doc["time"]).timestamp()


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_latency(port: int, rate: int, seconds: float) -> dict[str, float]:
    """``_child`` in a fresh process: p50/p99/max seconds from due time to PUBACK."""
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as data_dir:
        return run_child("bench._full_path_latency", port, data_dir, rate, seconds)


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        # Not a stand-alone bench: ``./dev bench full_path`` starts the broker and runs it.
        print(
            "usage: python -m bench._full_path_latency PORT DATA_DIR RATE SECONDS\n"
            "(its figures are printed by ./dev bench full_path)",
            file=sys.stderr,
        )
        sys.exit(2)
    port, data_dir, rate, seconds = argv
    print(json.dumps(asyncio.run(_child(int(port), data_dir, int(rate), float(seconds)))))


if __name__ == "__main__":
    main(sys.argv[1:])
