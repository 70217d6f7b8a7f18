"""The running pipeline under outbox faults: a full disk, a full outbox that blocks."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.outbox.stored import stored_payloads
from tidegate.clock import ClockWatcher
from tidegate.config.loader import load_config_text
from tidegate.pipeline import Gateway


def config(tmp_path: Path, count: int, buffer: str = "") -> str:
    return f"""
gateway: {{id: faults, data_dir: {tmp_path}}}
buffer: {{commit_interval: 20ms {buffer}}}
drivers:
  - name: s
    type: sim
    signals: [{{name: n, kind: counter, rate: 2000, count: {count}}}]
"""


async def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run(gateway: Gateway, scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        await gateway.ready.wait()
        try:
            await scenario()
        finally:
            stop.set()
            await task

    asyncio.run(main())


def set_max_pages(gateway: Gateway, extra: int | None) -> Awaitable[None]:
    def apply() -> None:
        db = gateway.outbox.outbox.db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages + extra if extra is not None else 10**9}")

    return gateway.outbox.call(apply)


def seqs(tmp_path: Path) -> list[int]:
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        return [json.loads(p)["seq"] for p in stored_payloads(db)]


def test_disk_full_holds_events_in_memory_and_resumes(tmp_path: Path) -> None:
    gateway = Gateway(load_config_text(config(tmp_path, 6000)))
    resumed_after: list[float] = []

    async def scenario() -> None:
        await until(lambda: gateway.outbox.stats.accepted >= 500, 10, "first commits")
        await set_max_pages(gateway, 0)  # the disk is full from now on
        await until(lambda: gateway.stats.commit_failures >= 2, 10, "failing commits")
        held = gateway.stats.events_in - gateway.outbox.stats.accepted
        await until(
            lambda: gateway.stats.events_in - gateway.outbox.stats.accepted > held + 500,
            10,
            "events still flowing in while the disk is full",
        )
        before = gateway.outbox.stats.accepted
        await set_max_pages(gateway, None)  # space returns
        freed = time.monotonic()
        await until(lambda: gateway.outbox.stats.accepted > before, 10, "commits to resume")
        resumed_after.append(time.monotonic() - freed)
        await until(lambda: gateway.outbox.stats.accepted == 6000, 20, "every event accepted")

    run(gateway, scenario)
    assert seqs(tmp_path) == list(range(1, 6001))  # nothing lost, nothing out of order
    assert gateway.stats.memory_drops == 0
    assert resumed_after[0] < 5  # liveness; the retry interval is 0.5 s
    print(f"commits resumed {resumed_after[0]:.2f} s after space returned")


def test_memory_bound_while_the_disk_is_full_drops_oldest_and_counts(tmp_path: Path) -> None:
    gateway = Gateway(load_config_text(config(tmp_path, 8000, ", memory_max_events: 1000")))

    async def scenario() -> None:
        await until(lambda: gateway.outbox.stats.accepted >= 200, 10, "first commits")
        await set_max_pages(gateway, 0)
        await until(lambda: gateway.stats.memory_drops > 0, 20, "memory to overflow")
        await until(lambda: gateway.stats.events_in == 8000, 20, "the sensor to finish")
        await set_max_pages(gateway, None)
        await until(
            lambda: gateway.outbox.stats.accepted + gateway.stats.memory_drops == 8000,
            20,
            "every event accepted or counted as dropped",
        )
        await until(
            lambda: gateway.outbox.stats.drops.get("dropped_memory") == gateway.stats.memory_drops,
            10,
            "the drop count to reach the outbox",
        )

    run(gateway, scenario)
    kept = seqs(tmp_path)
    assert kept == sorted(kept) and len(kept) == gateway.outbox.stats.accepted
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        (dropped,) = db.execute(
            "SELECT value FROM counters WHERE name = 'dropped_memory'"
        ).fetchone()
    assert dropped == gateway.stats.memory_drops


def test_when_full_block_backpressures_the_drivers_without_dropping(tmp_path: Path) -> None:
    gateway = Gateway(
        load_config_text(config(tmp_path, 20000, ", max_bytes: 1MB, when_full: block"))
    )

    async def scenario() -> None:
        await until(gateway.acceptor.queue.full, 20, "the outbox to fill and the queue behind it")
        stalled = gateway.drivers[0].health.events
        # A negative check needs an observation window: nothing may move in it.
        await asyncio.sleep(0.5)
        assert gateway.drivers[0].health.events == stalled
        assert gateway.outbox.stats.bytes <= gateway.outbox.stats.max_bytes

    run(gateway, scenario)
    stats = gateway.outbox.stats
    assert not any(v for k, v in stats.drops.items() if k.startswith("dropped"))
    assert gateway.drivers[0].health.events < 20000
    assert seqs(tmp_path) == list(range(1, stats.accepted + 1))


class SteppingClock:
    """A wall clock that reads 1971 (no RTC, no NTP yet) until told to step."""

    def __init__(self) -> None:
        self.offset = 86400.0 * 365 - time.time()

    def wall(self) -> float:
        return time.time() + self.offset


def test_clock_step_corrects_undelivered_events_in_the_running_gateway(tmp_path: Path) -> None:
    wall = SteppingClock()
    clock = ClockWatcher(step_threshold=2.0, wall=wall.wall)
    gateway = Gateway(load_config_text(config(tmp_path, 400)), clock=clock)

    async def scenario() -> None:
        await until(lambda: gateway.outbox.stats.accepted >= 100, 10, "events accepted unsynced")
        wall.offset = 0.0  # NTP: the wall clock steps to the true time
        await until(lambda: gateway.outbox.stats.accepted == 400, 10, "the rest")
        await until(lambda: clock.steps == 1, 5, "the step to be seen")

    run(gateway, scenario)
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        docs = [json.loads(p) for p in stored_payloads(db)]
    corrected = [d for d in docs if d.get("time_corrected")]
    assert len(corrected) >= 100
    assert not any(d.get("time_synced") is False for d in docs)  # every marked one was fixed
    assert [d["seq"] for d in docs] == list(range(1, 401))
