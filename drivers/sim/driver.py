"""``sim``: simulated sensors, for laptops, demos, tests and benchmarks.

Each signal has its own rate, from one event an hour up to hundreds of
thousands per second, and a shape. With a ``seed`` the values are
reproducible: the same config gives the same values at the same offsets
from the start.

```yaml
drivers:
  - name: greenhouse
    type: sim
    seed: 42
    signals:
      - {name: temperature, kind: sine, rate: 2, offset: 21, amplitude: 4, period: 10m,
         noise: 0.2, unit: "°C"}
      - {name: humidity, kind: random_walk, interval: 5s, start: 55, step: 0.5,
         min: 20, max: 100, unit: "%"}
      - {name: setpoint, kind: step, interval: 1m, values: [18, 21, 24], hold: 5m, unit: "°C"}
      - {name: water_pulses, kind: counter, rate: 50}
      - {name: door_open, kind: toggle, interval: 30s, probability: 0.3}
```

Kinds: ``sine`` (offset + amplitude·sin(2πt/period) + gaussian noise),
``random_walk`` (gaussian steps clamped to [min, max]), ``step`` (cycles
through ``values``, each held for ``hold``), ``counter`` (start, then
+increment per event), ``toggle`` (a boolean that flips with
``probability`` at each event). Give ``rate`` (events/s) or ``interval``.
``count`` stops a signal after that many events (finite runs).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import Literal

from pydantic import Field, model_validator

from tidegate.config.types import Duration, Name, Section
from tidegate.driver import Driver, DriverConfig, DriverState, Emit
from tidegate.event import Event, Value
from tidegate.ids import uuid7

MAX_BATCH = 1000


class SignalConfig(Section):
    name: Name = Field(description="Event name of this signal.")
    kind: Literal["sine", "random_walk", "step", "counter", "toggle"] = Field(
        description="Shape of the signal."
    )
    rate: float | None = Field(
        None, gt=0, le=1_000_000, description="Events per second (or give `interval`)."
    )
    interval: Duration | None = Field(
        None, gt=0, le=86400, description="Seconds between events (or give `rate`)."
    )
    count: int | None = Field(None, ge=0, description="Stop after this many events.")
    unit: str | None = Field(None, description="Unit carried by the events.")
    tags: dict[str, str] | None = Field(None, description="Tags carried by the events.")
    # shape parameters (each kind reads its own; the defaults make a sensible demo)
    offset: float = Field(20.0, description="sine: centre value.")
    amplitude: float = Field(5.0, description="sine: half the peak-to-peak swing.")
    period: Duration = Field(600.0, gt=0, description="sine: seconds per cycle.")
    noise: float = Field(0.0, ge=0, description="sine: standard deviation of added noise.")
    start: float = Field(0.0, description="random_walk / counter: first value.")
    step: float = Field(1.0, ge=0, description="random_walk: standard deviation of a step.")
    min: float | None = Field(None, description="random_walk: lower clamp.")
    max: float | None = Field(None, description="random_walk: upper clamp.")
    values: list[float] = Field(
        default_factory=lambda: [0.0, 1.0], min_length=1, description="step: the levels."
    )
    hold: Duration = Field(60.0, gt=0, description="step: seconds each level is held.")
    increment: float = Field(1.0, description="counter: added per event.")
    probability: float = Field(1.0, ge=0, le=1, description="toggle: chance to flip per event.")

    @model_validator(mode="after")
    def _rate_or_interval(self) -> SignalConfig:
        if (self.rate is None) == (self.interval is None):
            raise ValueError("give exactly one of `rate` (events/s) or `interval`")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self

    @property
    def events_per_second(self) -> float:
        if self.rate is not None:
            return self.rate
        assert self.interval is not None
        return 1.0 / self.interval


class SimConfig(DriverConfig):
    type: Literal["sim"] = "sim"
    seed: int | None = Field(None, description="Seed for reproducible values; default: random.")
    signals: list[SignalConfig] = Field(min_length=1, description="The simulated signals.")


ValueAt = Callable[[float], Value]
"""Value of a signal at ``offset`` seconds since the driver started."""


def make_generator(signal: SignalConfig, rng: random.Random) -> ValueAt:
    if signal.kind == "sine":
        omega = 2 * math.pi / signal.period

        def sine(t: float) -> Value:
            v = signal.offset + signal.amplitude * math.sin(omega * t)
            if signal.noise:
                v += rng.gauss(0.0, signal.noise)
            return round(v, 4)

        return sine
    if signal.kind == "random_walk":
        state = [signal.start]
        low = -math.inf if signal.min is None else signal.min
        high = math.inf if signal.max is None else signal.max

        def walk(t: float) -> Value:
            v = min(high, max(low, state[0] + rng.gauss(0.0, signal.step)))
            state[0] = v
            return round(v, 4)

        return walk
    if signal.kind == "step":
        levels = signal.values

        def step(t: float) -> Value:
            return levels[int(t // signal.hold) % len(levels)]

        return step
    if signal.kind == "counter":
        state = [signal.start - signal.increment]

        def counter(t: float) -> Value:
            state[0] += signal.increment
            v = state[0]
            return int(v) if v.is_integer() else v

        return counter
    flag = [False]

    def toggle(t: float) -> Value:
        if rng.random() < signal.probability:
            flag[0] = not flag[0]
        return flag[0]

    return toggle


class _Schedule:
    """When each event of one signal is due: evenly spaced from the start."""

    __slots__ = ("config", "emitted", "limit", "period", "value_at")

    def __init__(self, config: SignalConfig, value_at: ValueAt) -> None:
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


class SimDriver(Driver):
    config_type = SimConfig
    config: SimConfig

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


DRIVER = SimDriver
