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
``probability`` at each event). Each kind takes only its own shape keys.
Give ``rate`` (events/s) or ``interval``. ``count`` stops a signal after that
many events (finite runs).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, Tag, model_validator

from tidegate.config.types import Duration, Name, Section
from tidegate.driver import DriverConfig
from tidegate.drivers.kinds import pick_by


class _Signal(Section):
    """What every signal has: its name, how often, how many, and its unit and tags."""

    name: Name = Field(description="Event name of this signal.")
    rate: float | None = Field(
        None, gt=0, le=1_000_000, description="Events per second (or give `interval`)."
    )
    interval: Duration | None = Field(
        None, gt=0, le=86400, description="Seconds between events (or give `rate`)."
    )
    count: int | None = Field(None, ge=0, description="Stop after this many events.")
    unit: str | None = Field(None, description="Unit carried by the events.")
    tags: dict[str, str] | None = Field(None, description="Tags carried by the events.")

    _per_second: float = PrivateAttr(0.0)

    @model_validator(mode="after")
    def _rate_or_interval(self) -> _Signal:
        if self.rate is not None and self.interval is None:
            self._per_second = self.rate
        elif self.interval is not None and self.rate is None:
            self._per_second = 1.0 / self.interval
        else:
            raise ValueError("give exactly one of `rate` (events/s) or `interval`")
        return self

    @property
    def events_per_second(self) -> float:
        return self._per_second


class SineSignal(_Signal):
    """A wave around a centre value, with optional noise."""

    kind: Literal["sine"] = Field(description="offset + amplitude·sin(2πt/period) + noise.")
    offset: float = Field(20.0, description="Centre value.")
    amplitude: float = Field(5.0, description="Half the peak-to-peak swing.")
    period: Duration = Field(600.0, gt=0, description="Seconds per cycle.")
    noise: float = Field(0.0, ge=0, description="Standard deviation of added noise.")


class RandomWalkSignal(_Signal):
    """Gaussian steps from a start value, optionally clamped."""

    kind: Literal["random_walk"] = Field(description="Gaussian steps clamped to [min, max].")
    start: float = Field(0.0, description="First value.")
    step: float = Field(1.0, ge=0, description="Standard deviation of a step.")
    min: float | None = Field(None, description="Lower clamp.")
    max: float | None = Field(None, description="Upper clamp.")

    @model_validator(mode="after")
    def _ordered(self) -> RandomWalkSignal:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class StepSignal(_Signal):
    """Levels in turn, each held for a while."""

    kind: Literal["step"] = Field(description="Cycles through `values`, each held for `hold`.")
    values: list[float] = Field(
        default_factory=lambda: [0.0, 1.0], min_length=1, description="The levels."
    )
    hold: Duration = Field(60.0, gt=0, description="Seconds each level is held.")


class CounterSignal(_Signal):
    """A count that grows by the same amount at each event."""

    kind: Literal["counter"] = Field(description="start, then +increment per event.")
    start: float = Field(0.0, description="First value.")
    increment: float = Field(1.0, description="Added per event.")


class ToggleSignal(_Signal):
    """A boolean that flips at random."""

    kind: Literal["toggle"] = Field(description="A boolean that flips with `probability`.")
    probability: float = Field(1.0, ge=0, le=1, description="Chance to flip per event.")


Signal = SineSignal | RandomWalkSignal | StepSignal | CounterSignal | ToggleSignal

SignalConfig = Annotated[
    Annotated[SineSignal, Tag("kind: sine")]
    | Annotated[RandomWalkSignal, Tag("kind: random_walk")]
    | Annotated[StepSignal, Tag("kind: step")]
    | Annotated[CounterSignal, Tag("kind: counter")]
    | Annotated[ToggleSignal, Tag("kind: toggle")],
    pick_by("kind", ["sine", "random_walk", "step", "counter", "toggle"]),
]
"""One simulated signal; its ``kind`` picks the model."""


class SimConfig(DriverConfig, runtime="tidegate.drivers.sim.driver:SimDriver"):
    type: Literal["sim"] = Field("sim", description="Driver kind.")
    seed: int | None = Field(None, description="Seed for reproducible values; default: random.")
    signals: list[SignalConfig] = Field(min_length=1, description="The simulated signals.")
