"""Edge timelines: what a GPIO line does, for the simulated chip to play.

A *timeline* is a list (or a lazy, possibly endless iterable) of
``(t_ns, level)`` pairs: the *physical* level a line takes at ``t_ns``
nanoseconds after the moment the timeline is played. ``press``,
``pulse_train`` and ``level_changes`` make finite ones for tests;
``button_stream``, ``pulse_stream`` and ``level_stream`` make endless ones, and
``generator_stream`` the one a driver's ``sim:`` key describes, for
``tidegate simulate``.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Iterator
from typing import TypeAlias

from tidegate.drivers.gpio.config import ButtonSim, LevelsSim, PulsesSim

Timeline: TypeAlias = list[tuple[int, int]]
"""``(t_ns, physical level)`` pairs in time order, relative to when it is played."""

MS = 1_000_000
"""Nanoseconds in a millisecond."""
SECOND = 1_000_000_000
"""Nanoseconds in a second."""


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
    if count is None and duration_ns is not None:
        count = math.ceil(duration_ns * rate_hz / SECOND)
    elif count is None or duration_ns is not None:
        raise ValueError("give exactly one of count and duration_ns")
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
