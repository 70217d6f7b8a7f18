"""The gpio driver against the simulated chip.

Every edge here comes from a generated timeline played on a ``SimChip`` and read
by the real driver through the ``GpioBackend`` interface, on the chip's fast
virtual clock: runs are deterministic and take milliseconds of real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import errno
import os
import select
import sys
import textwrap
import time
import types
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tidegate.driver import DriverContext, DriverState
from tidegate.drivers.gpio import driver as gpio
from tidegate.drivers.gpio.driver import GpioConfig, GpioDriver
from tidegate.drivers.gpio.sim import (
    MS,
    SECOND,
    SimBackend,
    SimChip,
    Timeline,
    level_changes,
    press,
    presses,
    pulse_train,
)
from tidegate.errors import DriverError
from tidegate.event import Event

WALL = 1_700_000_000.0
CONTEXT = DriverContext(gateway_id="test-gw", reject=lambda raw, reason: None)
WAIT = 10.0
"""Deadline (real seconds) for any condition; runs take milliseconds."""


class Sink:
    """The driver's ``emit``: collects events and wakes whoever waits on them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._grew = asyncio.Condition()

    async def emit(self, events: Sequence[Event]) -> None:
        async with self._grew:
            self.events.extend(events)
            self._grew.notify_all()

    async def wait_for(self, predicate: Callable[[list[Event]], bool]) -> None:
        async with self._grew:
            await asyncio.wait_for(self._grew.wait_for(lambda: predicate(self.events)), WAIT)


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Wait for a condition nothing signals (driver health), up to a deadline."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.001)


def make_driver(chip: SimChip, **keys: Any) -> GpioDriver:
    config = GpioConfig.model_validate(
        {"name": "line", "type": "gpio", "backend": "sim", "line": 4, **keys}
    )
    return GpioDriver(config, CONTEXT, backend=SimBackend(chip))


@contextlib.asynccontextmanager
async def running(driver: GpioDriver) -> AsyncIterator[Sink]:
    sink = Sink()
    task = asyncio.create_task(driver.run(sink.emit))
    try:
        yield sink
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert driver.health.state is DriverState.STOPPED


async def run_timeline(chip: SimChip, driver: GpioDriver, line: int, timeline: Timeline,
                       *, then_ns: int = 100 * MS) -> list[Event]:
    """Play ``timeline`` on ``line``, let the clock run ``then_ns`` past its end,
    and return everything the driver emitted once it has caught up."""
    async with running(driver) as sink:
        end = chip.play(line, timeline)
        assert end is not None
        chip.run_until(end + then_ns)
        await asyncio.wait_for(chip.settled(), WAIT)
        assert driver.health.state is DriverState.RUNNING
        return list(sink.events)


def edge_times(events: list[Event]) -> list[tuple[str, int, float]]:
    return [((e.tags or {})["edge"], level(e), e.time) for e in events]


def level(event: Event) -> int:
    assert isinstance(event.value, int)
    return event.value


def report(event: Event) -> dict[str, float]:
    """A counter report's value."""
    assert isinstance(event.value, dict)
    return {key: float(v) for key, v in event.value.items()}


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
        async with running(driver) as sink:
            chip.play(4, timeline)
            chip.run_until(1000 * MS)
            await asyncio.wait_for(chip.settled(), WAIT)
        samples = [e for e in sink.events if e.tags is None]
        changes = [e for e in sink.events if e.tags is not None]
        assert [e.value for e in samples] == [1, 1, 1, 0, 0, 1, 1, 1, 0, 0]
        assert [e.time for e in samples] == pytest.approx([WALL + k / 10 for k in range(1, 11)])
        assert_edges(changes, [("rising", 1, WALL + 0.055), ("falling", 0, WALL + 0.305),
                               ("rising", 1, WALL + 0.505), ("falling", 0, WALL + 0.805)])
        assert all(e.name == "level" for e in sink.events)

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
        async with running(driver) as sink:
            chip.run_until(1 * SECOND)
            await sink.wait_for(lambda events: len(events) == 1)
        assert sink.events[0].value == 0  # high on an active-low line is inactive

    asyncio.run(body())


# --- lines, chips and backends ---------------------------------------------------


@pytest.mark.parametrize("line", ["GPIO17", "17", 17])
def test_line_is_found_by_name_or_offset(line: int | str) -> None:
    async def body() -> None:
        chip = SimChip(line_names={17: "GPIO17", 4: "GPIO4"}, wall_origin=WALL)
        driver = make_driver(chip, line=line, edge="rising")
        events = await run_timeline(chip, driver, 17, press(5 * MS, bounces=0))
        assert len(events) == 1
        # Nothing from the line next door.
        assert await run_timeline(chip, make_driver(chip, line=line), 4, press(bounces=0)) == []

    asyncio.run(body())


def test_unknown_line_name_is_a_counted_error_not_an_exception() -> None:
    async def body() -> None:
        chip = SimChip(line_names={17: "GPIO17"})
        driver = make_driver(chip, line="GPIO99", reconnect_min="10ms", reconnect_max="20ms")
        async with running(driver):
            await wait_until(lambda: driver.health.errors >= 2)
            assert driver.health.state is DriverState.RECONNECTING
            assert "GPIO99" in (driver.health.last_error or "")

    asyncio.run(body())


def test_chip_that_disappears_is_reopened() -> None:
    async def body() -> None:
        chip = SimChip(wall_origin=WALL)
        driver = make_driver(chip, edge="rising", reconnect_min="10ms", reconnect_max="50ms")
        async with running(driver) as sink:
            chip.play(4, press(bounces=0))
            await sink.wait_for(lambda events: len(events) == 1)
            chip.unplug()
            await wait_until(lambda: driver.health.state is DriverState.RECONNECTING)
            assert "went away" in (driver.health.last_error or "")
            chip.plug()
            await wait_until(lambda: driver.health.state is DriverState.RUNNING)
            chip.play(4, press(bounces=0))
            await sink.wait_for(lambda events: len(events) == 2)
        assert driver.health.errors >= 1
        assert driver.health.events == 2

    asyncio.run(body())


def test_kernel_debounce_required_where_the_chip_has_none() -> None:
    async def body() -> None:
        chip = SimChip(kernel_debounce=False)
        driver = make_driver(chip, debounce="20ms", debounce_method="kernel",
                             reconnect_min="10ms")
        async with running(driver):
            await wait_until(lambda: driver.health.errors >= 1)
        assert "debounce_method" in (driver.health.last_error or "")

    asyncio.run(body())


def test_gpiod_backend_without_gpiod_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)  # makes `import gpiod` fail
    config = GpioConfig.model_validate({"name": "button", "type": "gpio", "line": "GPIO17"})
    assert config.backend == "gpiod"
    with pytest.raises(DriverError, match=r"install tidegate\[gpio\]"):
        GpioDriver(config, CONTEXT)


class FakeGpiod:
    """A stand-in for the ``gpiod`` module with the libgpiod v2 API surface the
    backend uses (``Chip``, ``LineSettings``, ``line.*`` enums, ``EdgeEvent``),
    whose line request has a real file descriptor (a pipe), so the backend's
    ``add_reader`` wait, event reading and removal handling really run. It is
    no substitute for hardware; it keeps that code from being dead in CI."""

    class line:  # mirrors the gpiod.line module
        Direction = enum.Enum("Direction", "AS_IS INPUT OUTPUT")
        Edge = enum.Enum("Edge", "NONE RISING FALLING BOTH")
        Bias = enum.Enum("Bias", "AS_IS UNKNOWN DISABLED PULL_UP PULL_DOWN")
        Clock = enum.Enum("Clock", "MONOTONIC REALTIME HTE")
        Value = enum.Enum("Value", "INACTIVE ACTIVE")

    class EdgeEvent:
        Type = enum.Enum("Type", "RISING_EDGE FALLING_EDGE")

        def __init__(self, event_type: Any, timestamp_ns: int, line_offset: int) -> None:
            self.event_type, self.timestamp_ns = event_type, timestamp_ns
            self.line_offset = line_offset

    class LineSettings:
        def __init__(self, **settings: Any) -> None:
            self.settings = settings

    def __init__(self) -> None:
        self.present = True
        self.settings: Any = None
        self.request: Any = None
        gpiod = self

        class Request:
            def __init__(self) -> None:
                self.fd, self._wake = os.pipe()
                self.events: list[Any] = []
                self.released = False

            def push(self, rising: bool, timestamp_ns: int) -> None:
                kinds = gpiod.EdgeEvent.Type
                kind = kinds.RISING_EDGE if rising else kinds.FALLING_EDGE
                self.events.append(gpiod.EdgeEvent(kind, timestamp_ns, 17))
                os.write(self._wake, b"e")

            def unplug(self) -> None:
                os.close(self._wake)  # the fd turns readable (EOF), like POLLHUP

            def wait_edge_events(self, timeout: float | None = None) -> bool:
                return self.fd in select.select([self.fd], [], [], timeout)[0]

            def read_edge_events(self, max_events: int | None = None) -> list[Any]:
                if not os.read(self.fd, 1):
                    raise OSError(errno.ENODEV, "No such device")
                return [self.events.pop(0)]

            def get_value(self, offset: int) -> Any:
                return gpiod.line.Value.INACTIVE

            def release(self) -> None:
                self.released = True
                os.close(self.fd)

        class Chip:
            def __init__(self, path: str) -> None:
                if not gpiod.present or path != "/dev/gpiochip4":
                    raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)

            def line_offset_from_id(self, line_id: int | str) -> int:
                if line_id in ("GPIO17", 17):
                    return 17
                raise OSError(errno.ENOENT, "No such file or directory")

            def request_lines(self, config: dict[int, Any], consumer: str | None = None) -> Any:
                ((offset, settings),) = config.items()
                assert offset == 17 and consumer == "tidegate:button"
                gpiod.settings = settings.settings
                gpiod.request = Request()
                return gpiod.request

            def get_line_info(self, offset: int) -> Any:
                debounced = gpiod.settings["debounce_period"] > dt.timedelta(0)
                return types.SimpleNamespace(name="GPIO17", debounced=debounced)

            def close(self) -> None:
                pass

        self.Chip = Chip


def test_gpiod_backend_on_a_stand_in_module(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeGpiod()
    monkeypatch.setitem(sys.modules, "gpiod", fake)

    async def body() -> None:
        config = GpioConfig.model_validate(
            {"name": "button", "type": "gpio", "chip": "gpiochip4", "line": "GPIO17",
             "bias": "pull-up", "active_low": True, "edge": "rising", "debounce": "20ms",
             "reconnect_min": "10ms"}
        )
        driver = GpioDriver(config, CONTEXT)
        async with running(driver) as sink:
            await wait_until(lambda: driver.health.state is DriverState.RUNNING)
            line = fake.line
            assert fake.settings == {
                "direction": line.Direction.INPUT,
                "edge_detection": line.Edge.BOTH,  # debounced: the wanted edge is picked after
                "bias": line.Bias.PULL_UP,
                "active_low": True,
                "debounce_period": dt.timedelta(milliseconds=20),
                "event_clock": line.Clock.MONOTONIC,
            }
            pressed_at = time.monotonic_ns()
            fake.request.push(True, pressed_at)
            fake.request.push(False, pressed_at + 1000)
            await sink.wait_for(lambda events: len(events) == 1)
            assert sink.events[0].value == 1
            # Stamped by the event's monotonic timestamp, converted to wall time.
            pressed_wall = time.time() - (time.monotonic_ns() - pressed_at) / 1e9
            assert abs(sink.events[0].time - pressed_wall) < 0.5

            first = fake.request
            fake.present = False
            first.unplug()
            await wait_until(lambda: driver.health.state is DriverState.RECONNECTING)
            assert first.released
            fake.present = True
            await wait_until(
                lambda: fake.request is not first and driver.health.state is DriverState.RUNNING
            )
            fake.request.push(True, time.monotonic_ns())
            await sink.wait_for(lambda events: len(events) == 2)
        assert fake.request.released

    asyncio.run(body())


def test_demo_sim_runs_in_real_time() -> None:
    """`backend: sim` without a test chip: the generator plays on the wall clock."""

    async def body() -> None:
        config = GpioConfig.model_validate(
            {"name": "meter", "type": "gpio", "backend": "sim", "line": "GPIO27",
             "mode": "counter", "interval": "50ms", "sim": {"kind": "pulses", "rate_hz": 400}}
        )
        driver = GpioDriver(config, CONTEXT)
        async with running(driver) as sink:
            await sink.wait_for(lambda got: len(got) >= 2 and report(got[-1])["pulses"] > 0)
        counts = [report(e)["count"] for e in sink.events]
        assert sum(counts) == report(sink.events[-1])["pulses"]

    asyncio.run(body())


# --- config ----------------------------------------------------------------------


def test_yaml_example_loads() -> None:
    doc = gpio.__doc__ or ""
    example = textwrap.dedent(doc.split("Example::", 1)[1])
    drivers = yaml.safe_load(example)["drivers"]
    configs = [GpioConfig.model_validate(d) for d in drivers]
    button, meter = configs
    assert (button.line, button.debounce, button.active_low, button.bias) == (
        "GPIO17", 0.02, True, "pull-up"
    )
    assert button.sim is not None and button.sim.kind == "button"
    assert button.sim.bounce_window == 0.005
    assert (meter.mode, meter.per_pulse, meter.rate_per, meter.interval) == (
        "counter", 0.001, 3600.0, 10.0
    )
    assert meter.sim is not None and meter.sim.kind == "pulses"
    GpioDriver(meter, CONTEXT)  # a sim config builds its chip without I/O


@pytest.mark.parametrize(
    "keys",
    [
        {"on_change": True},  # level mode only
        {"per_pulse": 0.5},  # counter mode only
        {"mode": "level", "edge": "rising"},
        {"debounce": "soon"},
        {"line": -1},
        {"bias": "pull-sideways"},
        {"sim": {"kind": "pulses", "rate_hz": 0}},
        {"colour": "blue"},
    ],
)
def test_config_refuses_keys_that_do_not_fit(keys: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GpioConfig.model_validate({"name": "x", "type": "gpio", "line": 4, **keys})
