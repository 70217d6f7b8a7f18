"""The gpio driver against the simulated chip.

Every edge here comes from a generated timeline played on a ``SimChip`` and read
by the real driver through the ``GpioBackend`` interface, on the chip's fast
virtual clock: runs are deterministic and take milliseconds of real time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.drivers.devices import counter_report as report
from tests.drivers.devices import gpio_on, run_timeline
from tests.drivers.harness import WAIT, Probe, running
from tidegate.driver import DriverContext
from tidegate.drivers.gpio.driver import GpioDriver
from tidegate.drivers.gpio.sim import SimChip
from tidegate.drivers.gpio.timelines import (
    MS,
    SECOND,
    Timeline,
    level_changes,
    press,
    presses,
    pulse_train,
)
from tidegate.event import Event

WALL = 1_700_000_000.0
CONTEXT = DriverContext(gateway_id="test-gw", reject=lambda raw, reason: None)


def make_driver(chip: SimChip, **keys: Any) -> GpioDriver:
    return gpio_on(chip, CONTEXT, **keys)


def edge_times(events: list[Event]) -> list[tuple[str, int, float]]:
    return [((e.tags or {})["edge"], level(e), e.time) for e in events]


def level(event: Event) -> int:
    assert isinstance(event.value, int)
    return event.value


def assert_edges(events: list[Event], expected: list[tuple[str, int, float]]) -> None:
    """Same edges, values and times (to a microsecond: epoch floats hold no more)."""
    actual = edge_times(events)
    assert [a[:2] for a in actual] == [e[:2] for e in expected]
    assert [a[2] for a in actual] == pytest.approx([e[2] for e in expected], abs=1e-6)


def settle_times(timeline: Timeline) -> list[tuple[int, int]]:
    """Where each bouncy transition settles: (t of its last raw edge, level)."""
    settled: list[tuple[int, int]] = []
    for t, level in timeline:
        if settled and t - settled[-1][0] < 20 * MS:
            settled[-1] = (t, level)
        else:
            settled.append((t, level))
    return settled


# --- debounce ------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [False, True], ids=["software", "kernel"])
def test_20_bounces_within_5ms_with_20ms_debounce_give_one_event(kernel: bool) -> None:
    async def body() -> None:
        chip = SimChip(kernel_debounce=kernel, wall_origin=WALL)
        timeline = press(0, bounces=20, within_ns=5 * MS, hold_ns=100 * MS, seed=3)
        assert sum(1 for _, level in timeline if level == 1) == 41  # it does bounce
        for edge, expected in [("rising", 1), ("both", 2)]:
            driver = make_driver(chip, edge=edge, debounce="20ms")
            events = await run_timeline(chip, driver, 4, timeline)
            assert len(events) == expected
            assert driver.health.events == expected
        # The event carries the time the contact settled (its last bounce).
        last_make = max(t for t, _ in timeline if t < 100 * MS)
        start = chip.now_ns() - (timeline[-1][0] + 100 * MS)
        assert events[0].time == pytest.approx(chip.to_wall(start + last_make), abs=1e-9)
        assert [e.value for e in events] == [1, 0]

    asyncio.run(body())


@pytest.mark.parametrize("kernel", [False, True], ids=["software", "kernel"])
def test_presses_50ms_apart_are_all_counted(kernel: bool) -> None:
    timeline = presses(10, 50 * MS, bounces=20, within_ns=5 * MS, hold_ns=25 * MS, seed=11)

    async def body() -> None:
        chip = SimChip(kernel_debounce=kernel, wall_origin=WALL)
        counter = make_driver(chip, mode="counter", interval="100ms", debounce="20ms")
        reports = await run_timeline(chip, counter, 4, timeline)
        assert sum(report(e)["count"] for e in reports) == 10
        assert report(reports[-1])["pulses"] == 10

        start = chip.now_ns()
        edges = make_driver(chip, edge="both", debounce="20ms")
        events = await run_timeline(chip, edges, 4, timeline)
        expected = [
            ("rising" if level else "falling", level, chip.to_wall(start + t))
            for t, level in settle_times(timeline)
        ]
        assert_edges(events, expected)
        assert len(events) == 20

    asyncio.run(body())


def test_without_debounce_every_bounce_counts() -> None:
    """The control for the debounce tests: the same presses do bounce."""
    timeline = presses(10, 50 * MS, bounces=20, within_ns=5 * MS, hold_ns=25 * MS, seed=11)

    async def body() -> None:
        chip = SimChip(wall_origin=WALL)
        driver = make_driver(chip, mode="counter", interval="100ms")
        reports = await run_timeline(chip, driver, 4, timeline)
        assert report(reports[-1])["pulses"] == 10 * (21 + 20)

    asyncio.run(body())


def _toggles(gaps: list[int]) -> Timeline:
    """The line toggles after each gap, from 0: 1, 0, 1, ..."""
    return [(sum(gaps[: i + 1]), (i + 1) % 2) for i in range(len(gaps))]


# Bursts of bounces (gaps shorter than any debounce) between stable stretches.
bounce_timelines = st.lists(
    st.one_of(st.integers(1, 3 * MS), st.integers(10 * MS, 60 * MS)), min_size=1, max_size=40
).map(_toggles)


@settings(max_examples=40, deadline=None)
@given(timeline=bounce_timelines, debounce_ms=st.integers(1, 30))
def test_software_debounce_matches_the_kernel_rule(timeline: Timeline, debounce_ms: int) -> None:
    """Any timeline: the driver's debouncer reports what the chip's own does."""

    async def events_with(kernel: bool, method: str) -> list[tuple[str, int, float]]:
        chip = SimChip(kernel_debounce=kernel, wall_origin=WALL)
        driver = make_driver(chip, debounce=f"{debounce_ms}ms", debounce_method=method)
        return edge_times(await run_timeline(chip, driver, 4, timeline))

    kernel = asyncio.run(events_with(True, "kernel"))
    software = asyncio.run(events_with(True, "software"))
    assert software == kernel


# --- counter -------------------------------------------------------------------


def test_1khz_pulse_train_is_counted_exactly_with_rate_within_1_percent() -> None:
    timeline = pulse_train(1000, duration_ns=3 * SECOND, jitter=0.02, seed=7)

    async def body() -> None:
        chip = SimChip(wall_origin=WALL)
        driver = make_driver(chip, mode="counter", interval="1s", per_pulse=0.001,
                             unit="m3", rate_per="1h")
        # The last pulse ends at ~2.9995 s: let the clock reach the 3 s report.
        reports = await run_timeline(chip, driver, 4, timeline, then_ns=1 * MS)
        assert len(reports) == 3
        assert sum(report(e)["count"] for e in reports) == 3000
        last = reports[-1].value
        assert isinstance(last, dict)
        assert last["pulses"] == 3000
        assert last["total"] == pytest.approx(3.0)
        for event in reports:
            # 1000 pulses/s * 0.001 m3 * 3600 s/h
            assert report(event)["rate"] == pytest.approx(3600.0, rel=0.01)
            assert (event.unit, event.name) == ("m3", "count")
        assert [e.time for e in reports] == pytest.approx([WALL + 1, WALL + 2, WALL + 3])

    asyncio.run(body())


def test_pulses_on_a_window_boundary_count_in_the_window_they_start() -> None:
    # 10 Hz without jitter: pulse 10 rises exactly on the 1 s report tick.
    timeline = pulse_train(10, count=30)

    async def body() -> None:
        chip = SimChip(wall_origin=WALL)
        driver = make_driver(chip, mode="counter", interval="1s")
        reports = await run_timeline(chip, driver, 4, timeline, then_ns=50 * MS)
        assert [report(e)["count"] for e in reports] == [10, 10, 10]

    asyncio.run(body())


# --- level and edge modes ------------------------------------------------------


def test_level_mode_samples_every_interval_and_on_change() -> None:
    # Level 1 at 55 ms, 0 at 305, 1 at 505, 0 at 805: never on a sample tick.
    timeline = level_changes([250 * MS, 200 * MS, 300 * MS], start_ns=55 * MS)

    async def body() -> None:
        chip = SimChip(wall_origin=WALL)
        driver = make_driver(chip, mode="level", interval="100ms", on_change=True)
        probe = Probe()
        async with running(driver, probe):
            chip.play(4, timeline)
            chip.run_until(1000 * MS)
            await asyncio.wait_for(chip.settled(), WAIT)
        samples = [e for e in probe.events if e.tags is None]
        changes = [e for e in probe.events if e.tags is not None]
        assert [e.value for e in samples] == [1, 1, 1, 0, 0, 1, 1, 1, 0, 0]
        assert [e.time for e in samples] == pytest.approx([WALL + k / 10 for k in range(1, 11)])
        assert_edges(changes, [("rising", 1, WALL + 0.055), ("falling", 0, WALL + 0.305),
                               ("rising", 1, WALL + 0.505), ("falling", 0, WALL + 0.805)])
        assert all(e.name == "level" for e in probe.events)

    asyncio.run(body())


@pytest.mark.parametrize(
    ("active_low", "edge", "fires_on"),
    [
        (True, "rising", "press"),  # switch to ground, pull-up: pressing is active
        (True, "falling", "release"),
        (False, "rising", "release"),  # same wiring read active-high: release rises
        (False, "falling", "press"),
    ],
)
def test_edge_mode_polarity_follows_active_low(active_low: bool, edge: str, fires_on: str) -> None:
    # The line idles high and a press pulls it low, at 10 ms, released at 60 ms.
    timeline = press(10 * MS, hold_ns=50 * MS, bounces=0, idle_level=1)

    async def body() -> None:
        chip = SimChip(levels={4: 1}, wall_origin=WALL)
        driver = make_driver(chip, edge=edge, active_low=active_low, bias="pull-up")
        events = await run_timeline(chip, driver, 4, timeline)
        at = 0.010 if fires_on == "press" else 0.060
        assert_edges(events, [(edge, 1 if edge == "rising" else 0, WALL + at)])

    asyncio.run(body())


def test_level_reads_are_logical_with_active_low() -> None:
    async def body() -> None:
        chip = SimChip(levels={4: 1}, wall_origin=WALL)
        driver = make_driver(chip, mode="level", interval="1s", active_low=True)
        probe = Probe()
        async with running(driver, probe):
            chip.run_until(1 * SECOND)
            await probe.wait_for_events(1)
        assert probe.values() == [("level", 0)]  # high on an active-low line is inactive

    asyncio.run(body())
