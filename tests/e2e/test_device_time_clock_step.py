"""A clock step in the running gateway: a data logger on a real pty read by the
serial driver, a real outbox file, and a wall clock the test steps (NTP syncing a Pi
whose clock was slow). Both places that correct a step are crossed: the outbox's
undelivered rows, and the events routed but not yet committed when the step is seen.
Only the gateway's times move; a device's own time stays what the device sent.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter

from tests.drivers.harness import eventually
from tests.outbox.stored import stored_payloads
from tidegate.clock import ClockWatcher
from tidegate.config.loader import load_config_text
from tidegate.drivers.parsing.parse import FrameParser, ParseConfig
from tidegate.outgoing import Outgoing
from tidegate.pipeline import Gateway

SLOW = 30.0
"""How far the gateway's clock is behind until NTP steps it."""

PARSE = {
    "format": "kv",
    "fields": {"level": {"unit": "m"}},
    "time_field": {"field": "ts", "format": "epoch_ms", "max_behind": "7d"},
}


class SlowWall:
    """The gateway's wall clock: ``SLOW`` behind the true one until stepped."""

    def __init__(self) -> None:
        self.behind = SLOW

    def wall(self) -> float:
        return time.time() - self.behind


@contextmanager
def serial_port() -> Iterator[tuple[int, str]]:
    """A real pty: the test writes to the master as the device; the slave is the port."""
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def config(tmp_path: Path, port: str) -> str:
    return f"""
gateway: {{id: step, data_dir: {tmp_path}}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: logger
    type: serial
    port: {port}
    framing: {{type: line}}
    parse: {orjson.dumps(PARSE).decode()}
"""


def outbox(tmp_path: Path) -> dict[float, dict[str, Any]]:
    """Per value, the stored payload document."""
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        docs = [orjson.loads(p) for p in stored_payloads(db)]
    return {doc["value"]: doc for doc in docs}


def seconds(doc: dict[str, Any]) -> float:
    return datetime.fromisoformat(doc["time"]).timestamp()


def test_a_step_in_the_running_gateway_leaves_device_times_alone(tmp_path: Path) -> None:
    wall = SlowWall()
    clock = ClockWatcher(step_threshold=2.0, wall=wall.wall)
    recorded = round(time.time() * 1000) - 3_600_000  # the logger uploads an hour late
    held_record = round(time.time() * 1000) - 86_400_000  # ... and a day late
    parser = FrameParser(TypeAdapter(ParseConfig).validate_python(PARSE), "logger")
    before: dict[float, dict[str, Any]] = {}
    stamps: list[float] = []

    with serial_port() as (master, port):
        gateway = Gateway(load_config_text(config(tmp_path, port)), clock=clock)

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(gateway.run(stop))
            await gateway.ready.wait()
            try:
                os.write(master, b"level=1,ts=%d\nlevel=2\n" % recorded)
                await eventually(lambda: gateway.outbox.stats.accepted == 2, "two committed")
                before.update(outbox(tmp_path))
                stamps.append(wall.wall())
                held = parser.parse(b"level=3,ts=%d" % held_record, stamps[0])
                held += parser.parse(b"level=4", stamps[0])
                # NTP steps the wall clock; before the acceptor runs again (nothing
                # awaits in between), two more events are routed, stamped by the old
                # clock and not yet committed.
                wall.behind = 0.0
                gateway.acceptor.add([Outgoing(e, "t/logger", 1, False) for e in held])
                await eventually(lambda: gateway.outbox.stats.accepted == 4, "four committed")
            finally:
                stop.set()
                await task

        asyncio.run(scenario())

    assert clock.steps == 1
    docs = outbox(tmp_path)
    # In the outbox at the step: the device's time kept, the gateway's moved.
    assert before[1]["time_source"] == "device"
    assert docs[1] == before[1]
    assert seconds(docs[1]) == pytest.approx(recorded / 1000, abs=1e-6)
    assert seconds(docs[2]) == pytest.approx(seconds(before[2]) + SLOW, abs=1e-3)
    assert docs[2]["time_corrected"] is True and "time_source" not in docs[2]
    # Routed but not committed at the step: the same.
    assert docs[3]["time_source"] == "device" and "time_corrected" not in docs[3]
    assert seconds(docs[3]) == pytest.approx(held_record / 1000, abs=1e-6)
    assert seconds(docs[4]) == pytest.approx(stamps[0] + SLOW, abs=1e-3)
    assert "time_source" not in docs[4]
