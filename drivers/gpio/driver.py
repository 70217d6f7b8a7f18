"""GPIO lines: buttons, contacts, and pulse outputs such as flow and energy meters.

One driver instance watches one line, on real hardware through libgpiod v2
(``backend: gpiod``, the optional extra ``tidegate[gpio]``) or on a simulated
chip (``backend: sim``) that plays generated edges, so a device config runs on
a laptop by changing one line. Three modes:

- ``edge``: an event per debounced edge (``value`` 1 after a rising edge, 0
  after a falling one; tag ``edge``), stamped with the kernel's timestamp.
- ``counter``: every ``interval``, an event whose value holds ``count``
  (pulses in the interval), ``pulses`` (since the driver started), ``total``
  (``pulses * per_pulse``, in ``unit``) and ``rate`` (``count * per_pulse`` per
  ``rate_per``). The total starts at 0 when the gateway starts: a restart
  resets it (a rule or the cloud side keeps the meter reading), and pulses
  that arrive while the chip is away are lost.
- ``level``: every ``interval``, the line's level; with ``on_change``, also an
  event at each debounced change.

Debounce: with ``debounce_method: auto`` the kernel debounces where the chip
can (``debounce_period``), and the driver does it otherwise, on the event
timestamps, with the same rule: an edge counts once the level has been stable
for ``debounce``, and carries the time of the last bounce.

Example::

    drivers:
      - name: door-button
        type: gpio
        backend: gpiod          # sim: the same config on a laptop
        chip: gpiochip0         # or a path: /dev/gpiochip4
        line: GPIO17            # a line name, or an offset: 17
        mode: edge
        edge: rising
        bias: pull-up
        active_low: true        # pressed pulls the line to ground
        debounce: 20ms
        sim: {kind: button, presses_per_minute: 6, bounces: 20, bounce_window: 5ms}
      - name: water-meter
        type: gpio
        backend: sim
        line: 27
        mode: counter
        interval: 10s
        per_pulse: 0.001        # one pulse per litre
        unit: m3
        rate_per: 1h            # rate in m3/h
        sim: {kind: pulses, rate_hz: 10, jitter: 0.02}
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from pydantic import Field, model_validator

from tidegate.config.types import Duration, Name
from tidegate.driver import Driver, DriverConfig, DriverContext, DriverState, Emit
from tidegate.drivers.gpio.backend import (
    BiasName,
    EdgeDetection,
    GpioBackend,
    GpiodBackend,
    LineEdge,
    LineSpec,
)
from tidegate.drivers.gpio.sim import ButtonSim, LevelsSim, PulsesSim, SimGenerator, sim_backend
from tidegate.errors import DriverError
from tidegate.event import Event, Scalar, new_event

_log = logging.getLogger(__name__)

Mode = Literal["edge", "counter", "level"]
_MODE_OF_KEY: dict[str, Mode] = {
    "per_pulse": "counter",
    "rate_per": "counter",
    "unit": "counter",
    "on_change": "level",
}
"""Keys that mean something in one mode only; set in another, they are a mistake."""


class GpioConfig(DriverConfig):
    """One GPIO line watched as edges, a pulse counter or a sampled level."""

    type: Literal["gpio"] = Field(default="gpio", description="Driver kind: `gpio`.")
    backend: Literal["gpiod", "sim"] = Field(
        default="gpiod",
        description="`gpiod`: real hardware through libgpiod v2 (`tidegate[gpio]`); "
        "`sim`: a simulated chip playing the `sim` generator.",
    )
    chip: str = Field(
        default="gpiochip0",
        min_length=1,
        description="GPIO chip, by name (`gpiochip0`, looked up in /dev) or path "
        "(`/dev/gpiochip4`).",
    )
    line: Annotated[int, Field(ge=0)] | str = Field(
        description="The line: an offset on the chip (`17`) or a line name (`GPIO17`)."
    )
    mode: Mode = Field(
        default="edge",
        description="`edge`: an event per edge; `counter`: pulse count, total and rate "
        "every `interval`; `level`: the level every `interval`.",
    )
    edge: Literal["rising", "falling", "both"] | None = Field(
        default=None,
        description="Edges that count: in `edge` mode the edges reported (default "
        "`both`), in `counter` mode the edge counted as a pulse (default `rising`). "
        "Rising means inactive to active, so it follows `active_low`.",
    )
    bias: BiasName = Field(
        default="as-is",
        description="Internal bias resistor: `pull-up`, `pull-down`, `disabled`, or `as-is` "
        "(leave the chip's setting).",
    )
    active_low: bool = Field(
        default=False,
        description="The line is active when low (a switch to ground with a pull-up): "
        "levels and edges are inverted.",
    )
    debounce: Duration = Field(
        default=0.0,
        ge=0,
        description="An edge counts once the level has been stable this long (e.g. `20ms`); "
        "0 turns debouncing off.",
    )
    debounce_method: Literal["auto", "kernel", "software"] = Field(
        default="auto",
        description="`auto`: the kernel's debouncer where the chip has one, else software; "
        "`kernel`: require the kernel's; `software`: always debounce in tidegate.",
    )
    interval: Duration = Field(
        default=10.0,
        gt=0,
        description="`counter` and `level` modes: how often to report.",
    )
    on_change: bool = Field(
        default=False,
        description="`level` mode: also report each (debounced) change as it happens.",
    )
    per_pulse: float = Field(
        default=1.0,
        gt=0,
        description="`counter` mode: what one pulse is worth in `unit` "
        "(e.g. 0.001 m3 per pulse, 0.001 kWh for 1000 imp/kWh).",
    )
    unit: str | None = Field(
        default=None,
        description="`counter` mode: unit of `total`; `rate` is in `unit` per `rate_per`.",
    )
    rate_per: Duration = Field(
        default=1.0,
        gt=0,
        description="`counter` mode: the time base of `rate` (`1s`: per second, `1h`: "
        "per hour, so kWh pulses give kW).",
    )
    event: Name | None = Field(
        default=None,
        description="Event name; defaults to the mode's: `edge`, `count` or `level`.",
    )
    reconnect_min: Duration = Field(
        default=0.5, gt=0, description="First wait before reopening a chip that went away."
    )
    reconnect_max: Duration = Field(
        default=30.0, gt=0, description="Longest wait between reopening attempts."
    )
    sim: SimGenerator | None = Field(
        default=None,
        description="`sim` backend: what the simulated line does (`kind: button`, `pulses` "
        "or `levels`); defaults to the mode's natural one. Ignored by `gpiod`.",
    )

    @model_validator(mode="after")
    def _keys_fit_mode(self) -> GpioConfig:
        problems = [
            f"'{key}' applies only in {mode} mode"
            for key, mode in _MODE_OF_KEY.items()
            if key in self.model_fields_set and self.mode != mode
        ]
        if self.mode == "level" and "edge" in self.model_fields_set:
            problems.append("'edge' does not apply in level mode (on_change reports both)")
        if self.reconnect_max < self.reconnect_min:
            problems.append("reconnect_max must be at least reconnect_min")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def event_name(self) -> str:
        return self.event or {"edge": "edge", "counter": "count", "level": "level"}[self.mode]

    def counted_edges(self) -> Literal["rising", "falling", "both", "none"]:
        """The edges this mode reacts to."""
        if self.mode == "level":
            return "both" if self.on_change else "none"
        return self.edge or ("both" if self.mode == "edge" else "rising")


def _ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


class SoftwareDebouncer:
    """The kernel's debounce rule, on event timestamps rather than arrival times.

    A raw edge becomes a candidate; it is confirmed once ``period_ns`` passes
    (by the next edge's timestamp, or by the backend's clock) without another
    edge, and reported, stamped with its own time, if it leaves the level
    different from the last confirmed one. Deterministic for a given timeline.
    """

    def __init__(self, period_ns: int, level: int) -> None:
        self.period_ns = period_ns
        self.level = level
        """The last confirmed (debounced) level."""
        self._candidate: LineEdge | None = None

    @property
    def deadline_ns(self) -> int | None:
        """When the pending candidate will be confirmed, if nothing else happens."""
        return None if self._candidate is None else self._candidate.timestamp_ns + self.period_ns

    def feed(self, edge: LineEdge) -> list[LineEdge]:
        confirmed = self.settle(edge.timestamp_ns)
        self._candidate = edge
        return confirmed

    def settle(self, now_ns: int) -> list[LineEdge]:
        candidate = self._candidate
        if candidate is None or now_ns - candidate.timestamp_ns < self.period_ns:
            return []
        self._candidate = None
        if candidate.level == self.level:
            return []  # bounced back to where it was: no edge
        self.level = candidate.level
        return [candidate]


class _Backoff:
    """Doubling waits between reopening attempts, reset by a successful open."""

    def __init__(self, first: float, most: float) -> None:
        self._first, self._most = first, most
        self._next = first

    def reset(self) -> None:
        self._next = self._first

    def next_delay(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._most)
        return delay


class GpioDriver(Driver):
    """Watches one GPIO line; see the module docstring for modes and config."""

    config_type = GpioConfig

    def __init__(
        self,
        config: GpioConfig,
        context: DriverContext,
        *,
        backend: GpioBackend | None = None,
    ) -> None:
        """``backend`` replaces the one the config names (tests pass a ``SimBackend``)."""
        super().__init__(config, context)
        self.settings = config
        self.backend = backend if backend is not None else _backend_for(config)
        self._pulses = 0
        self._window_pulses = 0
        """Pulses not reported yet; carried over a reconnect so none is lost from `count`."""

    async def run(self, emit: Emit) -> None:
        backoff = _Backoff(self.settings.reconnect_min, self.settings.reconnect_max)
        try:
            while True:
                try:
                    await self._watch(emit, backoff)
                except Exception as exc:  # never out of run: count, log, reopen
                    self.backend.close()
                    message = str(exc) or type(exc).__name__
                    self.health.set_state(DriverState.RECONNECTING, message)
                    delay = backoff.next_delay()
                    if isinstance(exc, DriverError):
                        _log.warning("%s: %s; reopening in %.1fs", self.name, message, delay)
                    else:
                        _log.exception("%s: unexpected error; reopening in %.1fs", self.name, delay)
                    await asyncio.sleep(delay)
        finally:
            self.backend.close()
            self.health.set_state(DriverState.STOPPED)

    def _spec(self) -> LineSpec:
        cfg = self.settings
        edges: EdgeDetection = cfg.counted_edges()
        debounce_ns = _ns(cfg.debounce) if edges != "none" else 0
        if debounce_ns:
            # Both edges, whoever debounces: the debouncer must see the line go
            # back to judge a bounce; the wanted edges are picked afterwards.
            edges = "both"
        return LineSpec(
            line=cfg.line,
            edges=edges,
            bias=cfg.bias,
            active_low=cfg.active_low,
            debounce_ns=debounce_ns if cfg.debounce_method != "software" else 0,
            consumer=f"tidegate:{cfg.name}"[:31],  # the kernel keeps 31 characters
        )

    async def _watch(self, emit: Emit, backoff: _Backoff) -> None:
        """One open line, until the backend fails."""
        cfg, backend = self.settings, self.backend
        spec = self._spec()
        opened = backend.open(spec)
        debouncer: SoftwareDebouncer | None = None
        if spec.edges != "none" and cfg.debounce > 0 and not opened.kernel_debounce:
            if cfg.debounce_method == "kernel":
                raise DriverError(
                    f"GPIO chip {cfg.chip} cannot debounce line {cfg.line!r} in the kernel; "
                    "use debounce_method: auto or software"
                )
            debouncer = SoftwareDebouncer(_ns(cfg.debounce), backend.read_level())
        # The level as of the last edge handled: a tick between two edges of one
        # batch samples the level at the tick, not at the end of the batch.
        level: int | None = backend.read_level() if spec.edges == "both" else None
        self.health.set_state(DriverState.RUNNING)
        backoff.reset()
        _log.info("%s: line %s (%s) on %s open; %s debounce", self.name, opened.offset,
                  opened.name or "unnamed", cfg.chip,
                  "kernel" if opened.kernel_debounce else "software" if debouncer else "no")

        wanted = cfg.counted_edges()
        interval_ns = _ns(cfg.interval)
        # Intervals run on the backend's clock, so a fast simulated chip drives them too.
        next_tick = backend.now_ns() + interval_ns if cfg.mode != "edge" else None
        while True:
            settle_at = debouncer.deadline_ns if debouncer else None
            deadlines = [t for t in (next_tick, settle_at) if t is not None]
            raw = await backend.wait_edges(min(deadlines) if deadlines else None)
            now = backend.now_ns()
            edges: list[LineEdge] = []
            for edge in raw:
                edges += debouncer.feed(edge) if debouncer else [edge]
            if debouncer:
                edges += debouncer.settle(now)

            events: list[Event] = []
            for edge in edges:
                # A tick due before this edge closes its window first.
                while next_tick is not None and next_tick <= edge.timestamp_ns:
                    events += self._on_tick(next_tick, interval_ns, level)
                    next_tick += interval_ns
                level = edge.level
                if wanted == "both" or (wanted == "rising") == edge.rising:
                    events += self._on_edge(edge)
            if next_tick is not None and next_tick <= now:
                if cfg.mode == "level":
                    # One sample for however many ticks were missed: they'd all read now.
                    events += self._on_tick(next_tick, interval_ns, level)
                    next_tick += interval_ns * (1 + (now - next_tick) // interval_ns)
                else:
                    while next_tick <= now:
                        events += self._on_tick(next_tick, interval_ns, level)
                        next_tick += interval_ns
            if events:
                await emit(events)
                self.health.count(len(events))

    def _on_edge(self, edge: LineEdge) -> list[Event]:
        cfg = self.settings
        if cfg.mode == "counter":
            self._pulses += 1
            self._window_pulses += 1
            return []
        if cfg.mode == "level" and not cfg.on_change:
            return []
        return [
            new_event(
                cfg.name,
                cfg.event_name(),
                edge.level,
                tags={"edge": "rising" if edge.rising else "falling"},
                time=self.backend.to_wall(edge.timestamp_ns),
            )
        ]

    def _on_tick(self, tick_ns: int, interval_ns: int, level: int | None) -> list[Event]:
        """The report due at ``tick_ns``; ``level`` is the line's as of then, if the
        edges tell it, else the level is read now."""
        cfg = self.settings
        wall = self.backend.to_wall(tick_ns)
        if cfg.mode == "level":
            sample = self.backend.read_level() if level is None else level
            return [new_event(cfg.name, cfg.event_name(), sample, time=wall)]
        count, self._window_pulses = self._window_pulses, 0
        report: dict[str, Scalar] = {
            "count": count,
            "pulses": self._pulses,
            "total": self._pulses * cfg.per_pulse,
            "rate": count * cfg.per_pulse * _ns(cfg.rate_per) / interval_ns,
        }
        return [new_event(cfg.name, cfg.event_name(), report, unit=cfg.unit, time=wall)]


def _backend_for(config: GpioConfig) -> GpioBackend:
    if config.backend == "gpiod":
        return GpiodBackend(config.chip)
    defaults: dict[Mode, ButtonSim | PulsesSim | LevelsSim] = {
        "edge": ButtonSim(),
        "counter": PulsesSim(),
        "level": LevelsSim(),
    }
    return sim_backend(
        config.sim or defaults[config.mode],
        chip=config.chip,
        line=config.line,
        active_low=config.active_low,
    )


DRIVER = GpioDriver
