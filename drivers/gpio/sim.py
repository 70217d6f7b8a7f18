"""A simulated GPIO chip, and generators of edge timelines to drive it.

A *timeline* is a list (or a lazy, possibly endless iterable) of
``(t_ns, level)`` pairs: the *physical* level a line takes at ``t_ns``
nanoseconds after the moment the timeline is played. ``press``,
``pulse_train`` and ``level_changes`` make finite ones for tests;
``button_stream``, ``pulse_stream`` and ``level_stream`` make endless ones for
``tidegate simulate``.

``SimChip`` turns timelines into edge events the way the kernel does for a v2
line request (edge detection, active-low, and optionally its own debouncer),
and ``SimBackend`` serves them through the same ``GpioBackend`` interface as
the real gpiod backend. The chip runs in one of two clocks:

- *fast* (``realtime=False``, for tests): a virtual clock that jumps straight
  to the next thing that happens, as far as ``run_until`` (or the end of the
  timelines played) allows. The driver's intervals follow it, so a two-second
  1 kHz pulse train is counted in milliseconds and always the same way.
- *real time* (``realtime=True``, for the demo): edges happen when the
  monotonic clock reaches them; waits sleep until then without polling.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal, TypeAlias

from pydantic import Field

from tidegate.config.types import Duration, Section
from tidegate.drivers.gpio.backend import READ_BATCH, LineEdge, LineSpec, OpenedLine
from tidegate.errors import DriverError

Timeline: TypeAlias = list[tuple[int, int]]
"""``(t_ns, physical level)`` pairs in time order, relative to when it is played."""

MS = 1_000_000
"""Nanoseconds in a millisecond."""
SECOND = 1_000_000_000
"""Nanoseconds in a second."""


# --- timeline generators ----------------------------------------------------


def _bouncy_edges(
    at_ns: int, level: int, bounces: int, within_ns: int, rng: random.Random
) -> Timeline:
    """A contact reaching ``level`` at ``at_ns`` after ``bounces`` break/re-make
    pairs, all inside ``[at_ns, at_ns + within_ns)``; it has settled at the last."""
    if bounces == 0:
        return [(at_ns, level)]
    if within_ns <= 2 * bounces:
        raise ValueError(f"{bounces} bounces do not fit in {within_ns} ns")
    offsets = [0, *sorted(rng.sample(range(1, within_ns), 2 * bounces))]
    return [(at_ns + off, level if i % 2 == 0 else 1 - level) for i, off in enumerate(offsets)]


def press(
    at_ns: int = 0,
    *,
    hold_ns: int = 100 * MS,
    bounces: int = 20,
    within_ns: int = 5 * MS,
    release_bounces: int | None = None,
    idle_level: int = 0,
    seed: int | None = 0,
) -> Timeline:
    """A button press at ``at_ns`` held for ``hold_ns``, bouncing on make and on
    release: each bounce is a break and re-make after the first contact, so a
    press with 20 bounces is 41 raw edges inside ``within_ns``."""
    if hold_ns < within_ns:
        raise ValueError("hold_ns must be at least within_ns")
    rng = random.Random(seed)
    active = 1 - idle_level
    release = bounces if release_bounces is None else release_bounces
    return _bouncy_edges(at_ns, active, bounces, within_ns, rng) + _bouncy_edges(
        at_ns + hold_ns, idle_level, release, within_ns, rng
    )


def presses(count: int, every_ns: int, *, at_ns: int = 0, seed: int | None = 0,
            **press_kwargs: int) -> Timeline:
    """``count`` presses, ``every_ns`` apart (each with its own bounce pattern)."""
    timeline: Timeline = []
    for k in range(count):
        press_seed = None if seed is None else seed + k
        timeline += press(at_ns + k * every_ns, seed=press_seed, **press_kwargs)
    return timeline


def _pulses(
    rate_hz: float, *, jitter: float, duty: float, start_ns: int, idle_level: int,
    seed: int | None,
) -> Iterator[tuple[int, int]]:
    if rate_hz <= 0:
        raise ValueError("rate_hz must be positive")
    # Jitter only delays an edge, by up to jitter * period, so edges never reorder
    # and never fall before the start, as long as jitter < the shorter half-pulse.
    if not 0 <= jitter < min(duty, 1 - duty):
        raise ValueError("jitter must be >= 0 and less than both duty and 1 - duty")
    rng = random.Random(seed)
    period = SECOND / rate_hz
    active = 1 - idle_level
    for k in itertools.count():
        rise = start_ns + k * period
        yield round(rise + rng.random() * jitter * period), active
        yield round(rise + duty * period + rng.random() * jitter * period), idle_level


def pulse_train(
    rate_hz: float,
    *,
    count: int | None = None,
    duration_ns: int | None = None,
    jitter: float = 0.0,
    duty: float = 0.5,
    start_ns: int = 0,
    idle_level: int = 0,
    seed: int | None = 0,
) -> Timeline:
    """``count`` pulses (or as many as start within ``duration_ns``) at
    ``rate_hz``; pulse k rises at ``start_ns + k / rate_hz`` plus up to
    ``jitter`` periods."""
    if (count is None) == (duration_ns is None):
        raise ValueError("give exactly one of count and duration_ns")
    if count is None:
        assert duration_ns is not None
        count = math.ceil(duration_ns * rate_hz / SECOND)
    edges = _pulses(rate_hz, jitter=jitter, duty=duty, start_ns=start_ns,
                    idle_level=idle_level, seed=seed)
    return list(itertools.islice(edges, 2 * count))


def level_changes(holds_ns: Iterable[int], *, start_ns: int = 0, first_level: int = 1) -> Timeline:
    """Take ``first_level`` at ``start_ns``, then toggle after each hold in turn."""
    timeline: Timeline = [(start_ns, first_level)]
    t, level = start_ns, first_level
    for hold in holds_ns:
        t, level = t + hold, 1 - level
        timeline.append((t, level))
    return timeline


def button_stream(
    presses_per_minute: float,
    *,
    bounces: int,
    within_ns: int,
    hold_ns: int,
    idle_level: int = 0,
    seed: int | None = None,
) -> Iterator[tuple[int, int]]:
    """Endless bouncy presses at random (Poisson) times, ``presses_per_minute`` on average."""
    rng = random.Random(seed)
    mean_gap_ns = 60 * SECOND / presses_per_minute
    t = round(rng.expovariate(1.0) * mean_gap_ns)
    while True:
        yield from press(t, hold_ns=hold_ns, bounces=bounces, within_ns=within_ns,
                         idle_level=idle_level, seed=rng.randrange(2**32))
        # A new press can only start once the last release has settled.
        t += hold_ns + 2 * within_ns + round(rng.expovariate(1.0) * mean_gap_ns)


def pulse_stream(
    rate_hz: float, *, jitter: float = 0.0, duty: float = 0.5, idle_level: int = 0,
    seed: int | None = None
) -> Iterator[tuple[int, int]]:
    """An endless pulse train."""
    return _pulses(rate_hz, jitter=jitter, duty=duty, start_ns=0, idle_level=idle_level,
                   seed=seed)


def level_stream(
    changes_per_minute: float, *, first_level: int = 1, seed: int | None = None
) -> Iterator[tuple[int, int]]:
    """A level that toggles at random (Poisson) times: a door contact, a float switch."""
    rng = random.Random(seed)
    mean_hold_ns = 60 * SECOND / changes_per_minute
    holds = (max(1, round(rng.expovariate(1.0) * mean_hold_ns)) for _ in itertools.count())
    yield (0, first_level)
    t, level = 0, first_level
    for hold in holds:
        t, level = t + hold, 1 - level
        yield t, level


# --- generator configs (the `sim:` key of a gpio driver) ---------------------


class ButtonSim(Section):
    """Bouncy button presses at random times."""

    kind: Literal["button"] = Field(default="button", description="A push button.")
    presses_per_minute: float = Field(default=6.0, gt=0, description="Average press rate.")
    bounces: int = Field(
        default=20, ge=0, description="Break/re-make pairs on each press and release."
    )
    bounce_window: Duration = Field(
        default=0.005, gt=0, description="Time within which the contact settles."
    )
    hold: Duration = Field(default=0.2, gt=0, description="How long each press lasts.")
    seed: int | None = Field(default=None, description="Random seed; unset: random.")


class PulsesSim(Section):
    """A steady pulse train: flow meter, S0 energy meter, anemometer."""

    kind: Literal["pulses"] = Field(default="pulses", description="A pulse source.")
    rate_hz: float = Field(default=10.0, gt=0, description="Pulses per second.")
    jitter: float = Field(
        default=0.0, ge=0, lt=0.5, description="Each edge lands up to this many periods late."
    )
    seed: int | None = Field(default=None, description="Random seed; unset: random.")


class LevelsSim(Section):
    """A slow on/off signal at random times: door contact, float switch."""

    kind: Literal["levels"] = Field(default="levels", description="A slowly toggling level.")
    changes_per_minute: float = Field(default=2.0, gt=0, description="Average change rate.")
    seed: int | None = Field(default=None, description="Random seed; unset: random.")


SimGenerator = Annotated[ButtonSim | PulsesSim | LevelsSim, Field(discriminator="kind")]


def generator_stream(generator: ButtonSim | PulsesSim | LevelsSim, *, idle_level: int
                     ) -> Iterator[tuple[int, int]]:
    """The endless timeline a generator config describes."""
    if isinstance(generator, ButtonSim):
        return button_stream(
            generator.presses_per_minute,
            bounces=generator.bounces,
            within_ns=max(2 * generator.bounces + 1, round(generator.bounce_window * SECOND)),
            hold_ns=max(round(generator.hold * SECOND), round(generator.bounce_window * SECOND)),
            idle_level=idle_level,
            seed=generator.seed,
        )
    if isinstance(generator, PulsesSim):
        return pulse_stream(
            generator.rate_hz, jitter=generator.jitter, idle_level=idle_level,
            seed=generator.seed,
        )
    return level_stream(generator.changes_per_minute, first_level=1 - idle_level,
                        seed=generator.seed)


# --- the chip ------------------------------------------------------------------


@dataclass(eq=False)
class _SimRequest:
    """One line request: its settings, its event queue, its debounce state."""

    offset: int
    spec: LineSpec
    kernel_debounce: bool
    debounced_level: int
    """Physical level the chip's debouncer last reported (or found at request)."""
    queue: deque[LineEdge] = field(default_factory=deque)
    last_raw_ns: int = 0
    settle_at_ns: int | None = None
    live: bool = True


@dataclass(eq=False)
class _SimLine:
    offset: int
    name: str
    level: int = 0
    """Physical level."""
    timelines: deque[Iterator[tuple[int, int]]] = field(default_factory=deque)
    anchors: deque[int] = field(default_factory=deque)
    upcoming: tuple[int, int] | None = None
    """The next (absolute t_ns, level) point, taken from the timelines."""
    request: _SimRequest | None = None

    def peek(self) -> tuple[int, int] | None:
        while self.upcoming is None and self.timelines:
            point = next(self.timelines[0], None)
            if point is None:
                self.timelines.popleft()
                self.anchors.popleft()
            else:
                self.upcoming = (self.anchors[0] + point[0], point[1])
        return self.upcoming


class SimChip:
    """A GPIO chip whose lines follow played timelines.

    Lines have names (``line_names``) and can be looked up by name or offset the
    way ``gpiod.Chip.line_offset_from_id`` does. With ``kernel_debounce`` the
    chip honours ``LineSpec.debounce_ns`` itself, like gpiolib's debouncer: an
    edge is reported once the level has been stable for the period, stamped
    with the time of the last raw edge.
    """

    def __init__(
        self,
        *,
        label: str = "gpiochip0",
        num_lines: int = 32,
        line_names: Mapping[int, str] | None = None,
        levels: Mapping[int, int] | None = None,
        kernel_debounce: bool = False,
        realtime: bool = False,
        wall_origin: float | None = None,
    ) -> None:
        self.label = label
        self.kernel_debounce = kernel_debounce
        self.realtime = realtime
        self.present = True
        names = line_names or {}
        start_levels = levels or {}
        self._lines = [
            _SimLine(n, names.get(n, ""), start_levels.get(n, 0)) for n in range(num_lines)
        ]
        self._now = time.monotonic_ns() if realtime else 0
        self._origin_ns = self._now
        self._wall_origin = time.time() if wall_origin is None else wall_origin
        self._horizon: float = 0 if not realtime else math.inf
        self._changed = asyncio.Event()
        self._caught_up = asyncio.Event()

    # -- test and demo controls --

    async def settled(self) -> None:
        """Fast clock: return once a waiter has taken every edge up to the horizon
        and is blocked waiting for more (meant for tests with one driver per chip).
        Together with ``run_until`` this says "the driver has seen all of it"."""
        await self._caught_up.wait()

    def line_offset(self, line: int | str) -> int:
        """Offset of a line given by offset, by name, or by offset as a string."""
        if isinstance(line, str):
            for sim_line in self._lines:
                if sim_line.name == line:
                    return sim_line.offset
            try:
                line = int(line)
            except ValueError:
                raise ValueError(f"no line named {line!r} on {self.label}") from None
        if not 0 <= line < len(self._lines):
            raise ValueError(f"line offset {line} out of range on {self.label}")
        return line

    def now_ns(self) -> int:
        return time.monotonic_ns() if self.realtime else self._now

    def to_wall(self, timestamp_ns: int) -> float:
        return self._wall_origin + (timestamp_ns - self._origin_ns) / 1e9

    def level(self, line: int | str) -> int:
        """The physical level of a line now."""
        return self._lines[self.line_offset(line)].level

    def play(self, line: int | str, timeline: Iterable[tuple[int, int]],
             *, at_ns: int | None = None) -> int | None:
        """Queue ``timeline`` on ``line``, its times relative to ``at_ns`` (default:
        now). A finite timeline also lets the fast clock run to its end; returns
        that end (absolute), or None for a lazy one, which lets it run freely."""
        sim_line = self._lines[self.line_offset(line)]
        anchor = self.now_ns() if at_ns is None else at_ns
        end: int | None = None
        if isinstance(timeline, Sequence):
            points = list(timeline)
            if any(b[0] < a[0] for a, b in itertools.pairwise(points)):
                raise ValueError("timeline is not in time order")
            if points and points[0][0] < 0:
                raise ValueError("timeline starts before it is played")
            end = anchor + (points[-1][0] if points else 0)
            self._horizon = max(self._horizon, end)
            sim_line.timelines.append(iter(points))
        else:
            self._horizon = math.inf
            sim_line.timelines.append(iter(timeline))
        sim_line.anchors.append(anchor)
        self._notify()
        return end

    def run_until(self, t_ns: int) -> None:
        """Let the fast clock run as far as ``t_ns`` (waits move it; this doesn't)."""
        self._horizon = max(self._horizon, t_ns)
        self._notify()

    def set_level(self, line: int | str, level: int) -> None:
        """Change a line's physical level now."""
        self.play(line, [(0, level)])

    def unplug(self) -> None:
        """The chip goes away: open requests fail, new ones are refused."""
        self.present = False
        for sim_line in self._lines:
            if sim_line.request is not None:
                sim_line.request.live = False
                sim_line.request = None
        self._notify()

    def plug(self) -> None:
        """The chip is back; drivers reopen their lines."""
        self.present = True
        self._notify()

    # -- what SimBackend uses --

    def _open(self, spec: LineSpec) -> tuple[_SimRequest, OpenedLine]:
        if not self.present:
            raise DriverError(f"GPIO chip {self.label} is not present")
        try:
            offset = self.line_offset(spec.line)
        except ValueError as exc:
            raise DriverError(str(exc)) from exc
        sim_line = self._lines[offset]
        if sim_line.request is not None:
            raise DriverError(f"line {offset} on {self.label} is busy")
        kernel_debounce = self.kernel_debounce and spec.debounce_ns > 0
        request = _SimRequest(offset, spec, kernel_debounce, sim_line.level)
        sim_line.request = request
        return request, OpenedLine(offset, sim_line.name, kernel_debounce)

    def _close(self, request: _SimRequest) -> None:
        request.live = False
        sim_line = self._lines[request.offset]
        if sim_line.request is request:
            sim_line.request = None

    def _check(self, request: _SimRequest) -> None:
        if not request.live:
            raise DriverError(f"GPIO chip {self.label} went away")

    def _read(self, request: _SimRequest) -> int:
        self._check(request)
        return self._lines[request.offset].level ^ int(request.spec.active_low)

    def _report(self, request: _SimRequest, physical: int, timestamp_ns: int) -> None:
        rising = physical ^ int(request.spec.active_low) == 1
        if request.spec.edges in ("both", "rising" if rising else "falling"):
            request.queue.append(LineEdge(request.offset, rising, timestamp_ns))

    def _next_times(self) -> tuple[int | None, int | None]:
        """When the next settle timer fires, and when the next level change is."""
        settle = [
            ln.request.settle_at_ns
            for ln in self._lines
            if ln.request is not None and ln.request.settle_at_ns is not None
        ]
        changes = [point[0] for ln in self._lines if (point := ln.peek()) is not None]
        return (min(settle) if settle else None, min(changes) if changes else None)

    def _advance(self, target_ns: int, batch_for: _SimRequest) -> None:
        """Make everything up to ``target_ns`` happen, in time order; stop early
        once ``batch_for`` holds a full batch."""
        before = self._now
        happened = False
        while len(batch_for.queue) < READ_BATCH:
            settle, change = self._next_times()
            # Settle timers first on a tie: a level stable for exactly the period counts.
            if settle is not None and settle <= target_ns and (change is None or settle <= change):
                self._now = max(self._now, settle)
                self._settle(settle)
            elif change is not None and change <= target_ns:
                self._now = max(self._now, change)
                self._change(change)
            else:
                self._now = max(self._now, target_ns)
                break
            happened = True
        # Other waiters care about new edges, and on the fast clock about time passing
        # (their deadlines); waking them for nothing would have them wake us back.
        if happened or (not self.realtime and self._now != before):
            self._notify()

    def _settle(self, t_ns: int) -> None:
        for sim_line in self._lines:
            request = sim_line.request
            if request is not None and request.settle_at_ns == t_ns:
                request.settle_at_ns = None
                if sim_line.level != request.debounced_level:
                    request.debounced_level = sim_line.level
                    self._report(request, sim_line.level, request.last_raw_ns)

    def _change(self, t_ns: int) -> None:
        for sim_line in self._lines:
            point = sim_line.upcoming
            if point is None or point[0] != t_ns:
                continue
            sim_line.upcoming = None
            if point[1] == sim_line.level:
                continue
            sim_line.level = point[1]
            request = sim_line.request
            if request is None:
                continue
            if request.kernel_debounce:
                request.last_raw_ns = t_ns
                request.settle_at_ns = t_ns + request.spec.debounce_ns
            else:
                self._report(request, sim_line.level, t_ns)

    def _notify(self) -> None:
        self._caught_up.clear()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _drain(self, request: _SimRequest) -> list[LineEdge]:
        edges = list(request.queue)
        request.queue.clear()
        return edges

    async def _wait(self, request: _SimRequest, deadline_ns: int | None) -> list[LineEdge]:
        if self.realtime:
            return await self._wait_realtime(request, deadline_ns)
        return await self._wait_fast(request, deadline_ns)

    async def _wait_fast(self, request: _SimRequest, deadline_ns: int | None) -> list[LineEdge]:
        # Always give the loop a turn, as a real wait would: a caller that keeps
        # asking with a past deadline must not starve everything else.
        await asyncio.sleep(0)
        while True:
            self._check(request)
            if request.queue:
                return self._drain(request)
            if deadline_ns is not None and self._now >= deadline_ns:
                return []
            settle, change = self._next_times()
            upcoming = min((t for t in (settle, change) if t is not None), default=None)
            target: float = deadline_ns if deadline_ns is not None else (
                upcoming if upcoming is not None else math.inf)
            target = min(target, self._horizon)
            can_move = target > self._now or (upcoming is not None and upcoming <= target)
            if math.isinf(target) or not can_move:
                # Nothing more happens until the test plays more or lets time run.
                changed = self._changed
                self._caught_up.set()
                await changed.wait()
                continue
            self._advance(int(target), request)
            # Let the rest of the pipeline run between steps of virtual time.
            await asyncio.sleep(0)

    async def _wait_realtime(self, request: _SimRequest, deadline_ns: int | None
                             ) -> list[LineEdge]:
        while True:
            self._check(request)
            now = time.monotonic_ns()
            self._advance(now, request)
            if request.queue:
                return self._drain(request)
            if deadline_ns is not None and now >= deadline_ns:
                return []
            settle, change = self._next_times()
            wake = min((t for t in (settle, change, deadline_ns) if t is not None), default=None)
            changed = self._changed
            try:
                timeout = None if wake is None else max(0.0, (wake - now) / 1e9)
                await asyncio.wait_for(changed.wait(), timeout)
            except TimeoutError:
                pass


class SimBackend:
    """``GpioBackend`` on a ``SimChip``. ``autoplay`` is a timeline played on the
    line the first time it is opened (how the demo's generators start)."""

    def __init__(self, chip: SimChip, *, autoplay: Iterable[tuple[int, int]] | None = None
                 ) -> None:
        self.chip = chip
        self._autoplay = autoplay
        self._request: _SimRequest | None = None

    def open(self, spec: LineSpec) -> OpenedLine:
        self.close()
        self._request, opened = self.chip._open(spec)
        if self._autoplay is not None:
            self.chip.play(opened.offset, self._autoplay)
            self._autoplay = None
        return opened

    def close(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            self.chip._close(request)

    def _live(self) -> _SimRequest:
        if self._request is None:
            raise DriverError(f"no line is open on {self.chip.label}")
        return self._request

    async def wait_edges(self, deadline_ns: int | None) -> list[LineEdge]:
        return await self.chip._wait(self._live(), deadline_ns)

    def read_level(self) -> int:
        return self.chip._read(self._live())

    def now_ns(self) -> int:
        return self.chip.now_ns()

    def to_wall(self, timestamp_ns: int) -> float:
        return self.chip.to_wall(timestamp_ns)


def sim_backend(generator: ButtonSim | PulsesSim | LevelsSim, *, chip: str, line: int | str,
                active_low: bool) -> SimBackend:
    """The demo's simulated chip for one driver: real time, lines named like a
    Raspberry Pi's (``GPIO0``…``GPIO31``, plus ``line`` if it is another name),
    idle at the level the wiring implies, playing the generator's timeline."""
    names = {n: f"GPIO{n}" for n in range(32)}
    if isinstance(line, str) and line not in names.values() and not line.isdigit():
        names[0] = line
    idle_level = 1 if active_low else 0
    sim_chip = SimChip(
        label=chip,
        line_names=names,
        levels=dict.fromkeys(range(32), idle_level),
        kernel_debounce=True,
        realtime=True,
    )
    return SimBackend(sim_chip, autoplay=generator_stream(generator, idle_level=idle_level))
