"""The ``sim`` driver's runtime: signal generators and a schedule that emits in batches.

The schema and the YAML example are in ``tidegate.drivers.sim.config``. Events of
a signal are evenly spaced from the start (``rate`` or ``interval``), stamped with
the time they were due, and emitted in batches of at most ``MAX_BATCH``: a driver
behind schedule catches up without sleeping.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable

from tidegate.driver import Driver, DriverState, Emit
from tidegate.drivers.sim.config import (
    CounterSignal,
    RandomWalkSignal,
    Signal,
    SimConfig,
    SineSignal,
    StepSignal,
)
from tidegate.event import Event, Value
from tidegate.ids import uuid7

MAX_BATCH = 1000


ValueAt = Callable[[float], Value]
"""Value of a signal at ``offset`` seconds since the driver started."""


def make_generator(signal: Signal, rng: random.Random) -> ValueAt:
    if isinstance(signal, SineSignal):
        omega = 2 * math.pi / signal.period

        def sine(t: float) -> Value:
            v = signal.offset + signal.amplitude * math.sin(omega * t)
            if signal.noise:
                v += rng.gauss(0.0, signal.noise)
            return round(v, 4)

        return sine
    if isinstance(signal, RandomWalkSignal):
        state = [signal.start]
        low = -math.inf if signal.min is None else signal.min
        high = math.inf if signal.max is None else signal.max

        def walk(t: float) -> Value:
            v = min(high, max(low, state[0] + rng.gauss(0.0, signal.step)))
            state[0] = v
            return round(v, 4)

        return walk
    if isinstance(signal, StepSignal):
        levels, hold = signal.values, signal.hold

        def step(t: float) -> Value:
            return levels[int(t // hold) % len(levels)]

        return step
    if isinstance(signal, CounterSignal):
        increment = signal.increment
        total = [signal.start - increment]

        def counter(t: float) -> Value:
            total[0] += increment
            v = total[0]
            return int(v) if v.is_integer() else v

        return counter
    probability = signal.probability
    flag = [False]

    def toggle(t: float) -> Value:
        if rng.random() < probability:
            flag[0] = not flag[0]
        return flag[0]

    return toggle


class _Schedule:
    """When each event of one signal is due: evenly spaced from the start."""

    __slots__ = ("config", "emitted", "limit", "period", "value_at")

    def __init__(self, config: Signal, value_at: ValueAt) -> None:
        self.config = config
        self.value_at = value_at
        self.period = 1.0 / config.events_per_second
        self.emitted = 0
        self.limit = config.count if config.count is not None else math.inf

    def due(self, elapsed: float) -> int:
        return min(int(elapsed / self.period) + 1, int(min(self.limit, 2**62))) - self.emitted

    def next_due(self) -> float:
        return self.emitted * self.period

    @property
    def done(self) -> bool:
        return self.emitted >= self.limit


class SimDriver(Driver[SimConfig]):
    """Emits the configured signals on their schedules."""

    async def run(self, emit: Emit) -> None:
        seed = (
            self.config.seed
            if self.config.seed is not None
            else random.SystemRandom().getrandbits(64)
        )
        schedules = [
            _Schedule(s, make_generator(s, random.Random(f"{seed}:{self.name}:{s.name}")))
            for s in self.config.signals
        ]
        source = self.name
        start_wall = time.time()
        start_mono = time.monotonic()
        self.health.set_state(DriverState.RUNNING)
        try:
            while True:
                active = [s for s in schedules if not s.done]
                if not active:
                    self.health.set_state(DriverState.STOPPED)
                    return
                elapsed = time.monotonic() - start_mono
                batch: list[Event] = []
                for sched in active:
                    n = min(sched.due(elapsed), MAX_BATCH - len(batch))
                    cfg = sched.config
                    for _ in range(n):
                        offset = sched.emitted * sched.period
                        t = start_wall + offset
                        batch.append(
                            Event(
                                source,
                                cfg.name,
                                sched.value_at(offset),
                                t,
                                uuid7(int(t * 1000)),
                                0,
                                cfg.unit,
                                cfg.tags,
                            )
                        )
                        sched.emitted += 1
                    if len(batch) >= MAX_BATCH:
                        break
                if batch:
                    await emit(batch)
                    self.health.count(len(batch))
                    if len(batch) >= MAX_BATCH:
                        continue  # behind schedule: catch up without sleeping
                pending = [s.next_due() for s in active if not s.done]
                next_due = min(pending) if pending else elapsed
                wait = next_due - (time.monotonic() - start_mono)
                # Wake at least every 50 ms so a high-rate signal is emitted in batches.
                await asyncio.sleep(min(max(wait, 0.002), 0.05))
        finally:
            if self.health.state is DriverState.RUNNING:
                self.health.set_state(DriverState.STOPPED)

