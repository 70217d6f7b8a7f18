"""The ``gpio`` driver's runtime: one line, its edges debounced, reported as its mode says.

The schema, the modes and what a user writes are in ``tidegate.drivers.gpio.config``.
The line is read through a ``GpioBackend`` (``backend``: libgpiod v2; ``sim``: a
simulated chip); intervals run on the backend's clock, so a simulated chip on a
fast virtual clock drives them too. A chip that fails is closed and reopened after
the waits ``reconnect:`` gives; a successful open starts them again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

from tidegate.backoff import Backoff
from tidegate.driver import Driver, DriverContext, DriverState, Emit
from tidegate.drivers.gpio.backend import GpioBackend, GpiodBackend, LineEdge, LineSpec
from tidegate.drivers.gpio.config import (
    EdgeDetection,
    GpioConfig,
    GpioCounterConfig,
    GpioEdgeConfig,
    GpioInputConfig,
    GpioLevelConfig,
    GpioOutputConfig,
)
from tidegate.drivers.gpio.debounce import SoftwareDebouncer
from tidegate.drivers.gpio.sim_demo import sim_backend, sim_output_backend
from tidegate.errors import DriverError
from tidegate.event import Event, Scalar, new_event

_log = logging.getLogger(__name__)


def _ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


class GpioDriver(Driver[GpioConfig]):
    """Watches one GPIO line; see ``tidegate.drivers.gpio.config`` for modes and keys.

    ``mode: output`` is run by ``GpioOutputDriver`` (``gpio.output``), which its
    config names and which shares this class's line handling."""

    drives_outputs: ClassVar[bool] = False
    """``GpioOutputDriver`` says True: the class that runs ``mode: output``."""

    @property
    def line_config(self) -> GpioInputConfig:
        """The config of an input mode (the modes this class runs itself)."""
        cfg = self.config
        if isinstance(cfg, GpioOutputConfig):
            raise TypeError("an output line is run by GpioOutputDriver")
        return cfg

    def __init__(
        self,
        config: GpioConfig,
        context: DriverContext,
        *,
        backend: GpioBackend | None = None,
    ) -> None:
        """``backend`` replaces the one the config names (tests pass a ``SimBackend``)."""
        if isinstance(config, GpioOutputConfig) and not self.drives_outputs:
            raise TypeError("an output line is run by GpioOutputDriver (its config says so)")
        super().__init__(config, context)
        self.backend = backend if backend is not None else _backend_for(config)
        self._pulses = 0
        self._window_pulses = 0
        """Pulses not reported yet; carried over a reconnect so none is lost from `count`."""

    async def run(self, emit: Emit) -> None:
        backoff = Backoff(self.line_config.reconnect)
        try:
            while True:
                try:
                    await self._watch(emit, backoff)
                except Exception as exc:  # never out of run: count, log, reopen
                    await self._reopen_after(exc, backoff)
        finally:
            self.backend.close()
            self.health.set_state(DriverState.STOPPED)

    async def _reopen_after(self, exc: Exception, backoff: Backoff) -> None:
        """The line failed: close it, say so, and wait the backoff before reopening."""
        self.backend.close()
        message = str(exc) or type(exc).__name__
        self.health.set_state(DriverState.RECONNECTING, message)
        delay = backoff.next_delay()
        if isinstance(exc, DriverError):
            _log.warning("%s: %s; reopening in %.1fs", self.name, message, delay)
        else:
            _log.exception("%s: unexpected error; reopening in %.1fs", self.name, delay)
        await asyncio.sleep(delay)

    def _spec(self) -> LineSpec:
        cfg = self.line_config
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

    async def _watch(self, emit: Emit, backoff: Backoff) -> None:
        """One open line, until the backend fails."""
        cfg, backend = self.line_config, self.backend
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
        interval_ns = 0 if isinstance(cfg, GpioEdgeConfig) else _ns(cfg.interval)
        # Intervals run on the backend's clock, so a fast simulated chip drives them too.
        next_tick = backend.now_ns() + interval_ns if interval_ns else None
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
                if isinstance(cfg, GpioLevelConfig):
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
        cfg = self.line_config
        if isinstance(cfg, GpioCounterConfig):
            self._pulses += 1
            self._window_pulses += 1
            return []
        if isinstance(cfg, GpioLevelConfig) and not cfg.on_change:
            return []
        return [
            new_event(
                cfg.name,
                cfg.event,
                edge.level,
                tags={"edge": "rising" if edge.rising else "falling"},
                time=self.backend.to_wall(edge.timestamp_ns),
            )
        ]

    def _on_tick(self, tick_ns: int, interval_ns: int, level: int | None) -> list[Event]:
        """The report due at ``tick_ns``; ``level`` is the line's as of then, if the
        edges tell it, else the level is read now."""
        cfg = self.line_config
        wall = self.backend.to_wall(tick_ns)
        if isinstance(cfg, GpioLevelConfig):
            sample = self.backend.read_level() if level is None else level
            return [new_event(cfg.name, cfg.event, sample, time=wall)]
        if not isinstance(cfg, GpioCounterConfig):
            return []  # edge mode has no ticks
        count, self._window_pulses = self._window_pulses, 0
        report: dict[str, Scalar] = {
            "count": count,
            "pulses": self._pulses,
            "total": self._pulses * cfg.per_pulse,
            "rate": count * cfg.per_pulse * _ns(cfg.rate_per) / interval_ns,
        }
        return [new_event(cfg.name, cfg.event, report, unit=cfg.unit, time=wall)]


def _backend_for(config: GpioConfig) -> GpioBackend:
    if config.backend == "gpiod":
        return GpiodBackend(config.chip)
    if isinstance(config, GpioOutputConfig):
        return sim_output_backend(chip=config.chip, line=config.line)
    return sim_backend(
        config.sim,
        chip=config.chip,
        line=config.line,
        active_low=config.active_low,
    )

