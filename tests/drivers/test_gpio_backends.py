"""The gpio driver's lines, chips and backends: names and offsets, a chip that goes
away, libgpiod's bindings (a stand-in module with real file descriptors), and the
demo's real-time simulated chip.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import errno
import os
import select
import sys
import time
import types
from typing import Any

import pytest

from tests.drivers.devices import GPIO_CONFIG, gpio_on, run_timeline
from tests.drivers.devices import counter_report as report
from tests.drivers.harness import Probe, eventually, running
from tidegate.driver import DriverContext, DriverState
from tidegate.drivers.gpio.driver import GpioDriver
from tidegate.drivers.gpio.sim import SimChip
from tidegate.drivers.gpio.timelines import MS, press
from tidegate.errors import DriverError

WALL = 1_700_000_000.0
CONTEXT = DriverContext(gateway_id="test-gw", reject=lambda raw, reason: None)


def make_driver(chip: SimChip, **keys: Any) -> GpioDriver:
    return gpio_on(chip, CONTEXT, **keys)


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
        driver = make_driver(chip, line="GPIO99",
                             reconnect={"initial_delay": "10ms", "max_delay": "20ms"})
        async with running(driver, Probe()):
            await eventually(lambda: driver.health.errors >= 2, "two failed opens")
            assert driver.health.state is DriverState.RECONNECTING
            assert "GPIO99" in (driver.health.last_error or "")

    asyncio.run(body())


def test_chip_that_disappears_is_reopened() -> None:
    async def body() -> None:
        chip = SimChip(wall_origin=WALL)
        driver = make_driver(chip, edge="rising",
                             reconnect={"initial_delay": "10ms", "max_delay": "50ms"})
        probe = Probe()
        async with running(driver, probe):
            chip.play(4, press(bounces=0))
            await probe.wait_for_events(1)
            chip.unplug()
            await eventually(lambda: driver.health.state is DriverState.RECONNECTING, "unplugged")
            assert "went away" in (driver.health.last_error or "")
            chip.plug()
            await eventually(lambda: driver.health.state is DriverState.RUNNING, "reopened")
            chip.play(4, press(bounces=0))
            await probe.wait_for_events(2)
        assert driver.health.errors >= 1
        assert driver.health.events == 2

    asyncio.run(body())


def test_kernel_debounce_required_where_the_chip_has_none() -> None:
    async def body() -> None:
        chip = SimChip(kernel_debounce=False)
        driver = make_driver(chip, debounce="20ms", debounce_method="kernel",
                             reconnect={"initial_delay": "10ms"})
        async with running(driver, Probe()):
            await eventually(lambda: driver.health.errors >= 1, "the refused debounce")
        assert "debounce_method" in (driver.health.last_error or "")

    asyncio.run(body())


def test_gpiod_backend_without_gpiod_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)  # makes `import gpiod` fail
    config = GPIO_CONFIG.validate_python({"name": "button", "type": "gpio", "line": "GPIO17"})
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
        config = GPIO_CONFIG.validate_python(
            {"name": "button", "type": "gpio", "chip": "gpiochip4", "line": "GPIO17",
             "bias": "pull-up", "active_low": True, "edge": "rising", "debounce": "20ms",
             "reconnect": {"initial_delay": "10ms"}}
        )
        driver = GpioDriver(config, CONTEXT)
        probe = Probe()
        async with running(driver, probe):
            await eventually(lambda: driver.health.state is DriverState.RUNNING, "the line open")
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
            (pressed,) = await probe.wait_for_events(1)
            assert pressed.value == 1
            # Stamped by the event's monotonic timestamp, converted to wall time.
            pressed_wall = time.time() - (time.monotonic_ns() - pressed_at) / 1e9
            assert abs(pressed.time - pressed_wall) < 0.5

            first = fake.request
            fake.present = False
            first.unplug()
            await eventually(lambda: driver.health.state is DriverState.RECONNECTING, "unplugged")
            assert first.released
            fake.present = True
            await eventually(
                lambda: fake.request is not first and driver.health.state is DriverState.RUNNING,
                "a new line request",
            )
            fake.request.push(True, time.monotonic_ns())
            await probe.wait_for_events(2)
        assert fake.request.released

    asyncio.run(body())


def test_demo_sim_runs_in_real_time() -> None:
    """`backend: sim` without a test chip: the generator plays on the wall clock."""

    async def body() -> None:
        config = GPIO_CONFIG.validate_python(
            {"name": "meter", "type": "gpio", "backend": "sim", "line": "GPIO27",
             "mode": "counter", "interval": "50ms", "sim": {"kind": "pulses", "rate_hz": 400}}
        )
        driver = GpioDriver(config, CONTEXT)
        probe = Probe()
        async with running(driver, probe):
            await eventually(
                lambda: len(probe.events) >= 2 and report(probe.events[-1])["pulses"] > 0,
                "two reports with pulses",
            )
        counts = [report(e)["count"] for e in probe.events]
        assert sum(counts) == report(probe.events[-1])["pulses"]

    asyncio.run(body())
