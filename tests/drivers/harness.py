"""Running a driver the way the pipeline does, for the driver tests.

``Probe`` is what the pipeline gives a driver: an ``emit`` that collects batches
(optionally held at a ``gate``, as a full queue holds it) and a ``DriverContext``
whose ``reject`` records raw bytes and reasons. ``running`` runs a driver until
its block ends, then cancels it and checks that it stopped cleanly;
``eventually`` waits for a condition with a deadline, failing with what never
happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from tidegate.driver import Driver, DriverContext, DriverState
from tidegate.event import Event

WAIT = 10.0
"""Deadline for any condition; a passing test never waits this long."""

D = TypeVar("D", bound=Driver)


class Probe:
    """What the pipeline would see: emitted batches and rejects. ``gate`` holds emit."""

    def __init__(self, gateway_id: str = "test-gw") -> None:
        self.batches: list[list[Event]] = []
        self.rejects: list[tuple[bytes, str]] = []
        self.gate: asyncio.Event | None = None
        self.blocked = 0
        """Calls of emit that waited at the gate."""
        self.held = 0
        """Events in the batches that waited at the gate."""
        self.context = DriverContext(gateway_id, self.reject)

    async def emit(self, batch: Sequence[Event]) -> None:
        if self.gate is not None and not self.gate.is_set():
            self.blocked += 1
            self.held += len(batch)
            await self.gate.wait()
        self.batches.append(list(batch))

    def reject(self, raw: bytes, reason: str) -> None:
        self.rejects.append((raw, reason))

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]

    def values(self, name: str | None = None) -> list[Any]:
        """``(name, value)`` of every event, or the values of the events called ``name``."""
        if name is not None:
            return [e.value for e in self.events if e.name == name]
        return [(e.name, e.value) for e in self.events]

    def triples(self) -> list[tuple[str, str, Any]]:
        return [(e.source, e.name, e.value) for e in self.events]

    def reasons(self) -> list[str]:
        return [reason for _, reason in self.rejects]

    async def wait_for_events(self, n: int, within: float = WAIT) -> list[Event]:
        """The first ``n`` events, once they are there."""
        await eventually(lambda: len(self.events) >= n, f"{n} events", within)
        return self.events[:n]


async def eventually(predicate: Callable[[], bool], what: str, within: float = WAIT) -> None:
    """Wait for a condition, failing with ``what`` if ``within`` seconds pass first."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.002)


@asynccontextmanager
async def running(driver: D, probe: Probe) -> AsyncIterator[D]:
    """``driver`` running on ``probe.emit`` until the block ends; then it is cancelled
    (even while held at ``probe.gate``) and must have stopped: cancelled, not failed,
    and in state STOPPED."""
    task = asyncio.create_task(driver.run(probe.emit), name=f"{driver.name}-under-test")
    try:
        yield driver
    finally:
        await stop(task)
    assert driver.health.state is DriverState.STOPPED, driver.health


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel a driver's run and check it ended by the cancellation, not by an error."""
    task.cancel()
    try:
        await asyncio.wait_for(task, WAIT)
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError(f"{task.get_name()} returned instead of being cancelled")
