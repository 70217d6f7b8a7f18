"""The gpio driver's output mode on the simulated chip.

The real driver drives a ``SimChip`` line through the ``GpioBackend`` interface;
the chip's fast virtual clock is the driver's clock (the interlock's, the
pulse's, ``max_on``'s), so time moves only when a test lets it (``advance``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import ValidationError

from tests.drivers.devices import GPIO_CONFIG
from tests.drivers.harness import WAIT, Probe, eventually, running
from tidegate.driver import DriverContext, DriverState
from tidegate.driver_kinds import driver_types
from tidegate.drivers.gpio.config import GpioOutputConfig
from tidegate.drivers.gpio.driver import GpioDriver
from tidegate.drivers.gpio.output import GpioOutputDriver
from tidegate.drivers.gpio.sim import SimChip
from tidegate.drivers.gpio.sim_backend import SimBackend
from tidegate.errors import ActionError, ActionRefused

SECOND = 1_000_000_000
LINE = 4


def output_on(chip: SimChip, context: DriverContext, **keys: Any) -> GpioOutputDriver:
    config = GPIO_CONFIG.validate_python(
        {"name": "vent", "backend": "sim", "line": LINE, "mode": "output", **keys}
    )
    driver = GpioOutputDriver(config, context, backend=SimBackend(chip))
    return driver


@asynccontextmanager
async def driving(chip: SimChip, probe: Probe, **keys: Any) -> AsyncIterator[GpioOutputDriver]:
    """The output driver running on line 4 of ``chip``, its line open."""
    async with running(output_on(chip, probe.context, **keys), probe) as driver:
        await eventually(lambda: driver.state is not None, "the line open")
        await asyncio.wait_for(chip.settled(), WAIT)
        yield driver


async def advance(chip: SimChip, seconds: float) -> None:
    """Let the chip's clock run ``seconds`` on, and the driver catch up."""
    chip.run_until(chip.now_ns() + round(seconds * SECOND))
    await asyncio.wait_for(chip.settled(), WAIT)


def states(probe: Probe) -> list[tuple[Any, str]]:
    return [(e.value, (e.tags or {})["cause"]) for e in probe.events]


def run(body: Any) -> None:
    asyncio.run(body())


# --- start, switch, pulse -------------------------------------------------------------


@pytest.mark.parametrize(
    ("initial", "active_low", "level"),
    [("off", False, 0), ("on", False, 1), ("off", True, 1), ("on", True, 0)],
)
def test_the_line_starts_driven_to_initial(initial: str, active_low: bool, level: int) -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe, initial=initial, active_low=active_low) as driver:
            assert driver.state is (initial == "on")
            assert chip.driven(LINE) == level
            assert chip.history(LINE) == [(0, level)]  # driven from the request on
            await probe.wait_for_events(1)
            assert states(probe) == [(int(initial == "on"), "initial")]
            assert driver.health.counters.get("switches", 0) == 0

    run(body)


def test_set_and_toggle_drive_the_line_and_report_who_switched_it() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe) as driver:
            assert await driver.set_output(True, cause="cmd:vent_on") is True
            assert chip.driven(LINE) == 1
            assert await driver.set_output(True, cause="again") is True  # no switch
            assert await driver.toggle_output(cause="rule:cool") is False
            assert chip.driven(LINE) == 0
            assert await driver.toggle_output(cause="rule:heat") is True
            await probe.wait_for_events(4)
            assert states(probe) == [
                (0, "initial"),
                (1, "cmd:vent_on"),
                (0, "rule:cool"),
                (1, "rule:heat"),
            ]
            assert driver.health.counters["switches"] == 3
            assert driver.health.events == 4
            assert [e.name for e in probe.events] == ["state"] * 4
            assert {e.source for e in probe.events} == {"vent"}

    run(body)


def test_active_low_inverts_the_physical_level() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe, active_low=True) as driver:
            await driver.set_output(True, cause="a")
            assert chip.driven(LINE) == 0
            await driver.set_output(False, cause="b")
            assert [level for _, level in chip.history(LINE)] == [1, 0, 1]
            await probe.wait_for_events(3)
            assert [v for v, _ in states(probe)] == [0, 1, 0]  # events are logical

    run(body)


def test_report_false_emits_nothing() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe, report=False) as driver:
            await driver.set_output(True, cause="a")
            await advance(chip, 1)
            assert probe.events == []

    run(body)


def test_a_pulse_is_on_for_its_duration_then_off() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe) as driver:
            await advance(chip, 1)
            await driver.pulse_output(2.5, cause="cmd:feed")
            assert chip.driven(LINE) == 1
            await advance(chip, 2.4)
            assert chip.driven(LINE) == 1
            await advance(chip, 5)
            assert driver.state is False
            assert chip.history(LINE) == [(0, 0), (1 * SECOND, 1), (3_500_000_000, 0)]
            await probe.wait_for_events(3)
            assert states(probe) == [(0, "initial"), (1, "cmd:feed"), (0, "cmd:feed")]

    run(body)


def test_an_explicit_switch_ends_a_pulse() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe) as driver:
            await driver.pulse_output(2, cause="p")
            await driver.set_output(True, cause="hold")
            await advance(chip, 10)
            assert chip.driven(LINE) == 1

    run(body)


@pytest.mark.parametrize("duration", [0.0, -1.0])
def test_a_pulse_needs_a_duration(duration: float) -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe) as driver:
            with pytest.raises(ActionRefused) as caught:
                await driver.pulse_output(duration, cause="p")
            assert caught.value.reason == "bad_arguments"

    run(body)


# --- the interlock ----------------------------------------------------------------------


def test_interlock_refusal_raises_counts_and_moves_nothing() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe, interlock={"min_off": "30s"}) as driver:
            await advance(chip, 12)
            with pytest.raises(ActionRefused) as caught:
                await driver.set_output(True, cause="cmd")
            assert caught.value.reason == "interlock"
            assert str(caught.value) == (
                "vent: off for 12 s of its 30 s minimum; try again in 18 s"
            )
            with pytest.raises(ActionRefused):
                await driver.toggle_output(cause="cmd")
            with pytest.raises(ActionRefused):
                await driver.pulse_output(1, cause="cmd")
            assert driver.health.counters["refused"] == 3
            assert chip.history(LINE) == [(0, 0)]
            await advance(chip, 18)
            assert await driver.set_output(True, cause="cmd") is True

    run(body)


def test_a_pulse_longer_than_max_on_is_refused() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe, interlock={"max_on": "5s"}) as driver:
            with pytest.raises(ActionRefused, match="exceeds max_on"):
                await driver.pulse_output(6, cause="p")
            await driver.pulse_output(5, cause="p")

    run(body)


def test_max_on_switches_the_output_off_by_itself() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe, interlock={"max_on": "1m"}) as driver:
            await driver.set_output(True, cause="cmd")
            await advance(chip, 59.9)
            assert chip.driven(LINE) == 1
            await advance(chip, 1)
            assert driver.state is False
            assert chip.history(LINE)[-1] == (60 * SECOND, 0)
            await probe.wait_for_events(3)
            assert states(probe)[-1] == (0, "max_on")

    run(body)


def test_max_on_applies_to_an_initial_on() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe, initial="on", interlock={"max_on": 10}):
            await advance(chip, 10)
            assert chip.history(LINE) == [(0, 1), (10 * SECOND, 0)]

    run(body)


# --- stopping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_stop", "level", "event"), [("off", 0, [(0, "stop")]), ("on", 1, []), ("keep", 1, [])]
)
def test_a_clean_stop_drives_on_stop_then_releases(
    on_stop: str, level: int, event: list[tuple[int, str]]
) -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe, on_stop=on_stop) as driver:
            await driver.set_output(True, cause="cmd")
            await probe.wait_for_events(2)
        assert chip.driven(LINE) is None  # released
        assert chip.history(LINE)[-1][1] == level
        assert states(probe)[2:] == event
        assert driver.state is None

    run(body)


def test_on_stop_on_switches_an_off_line_on() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        async with driving(chip, probe, on_stop="on"):
            await probe.wait_for_events(1)
        assert [level for _, level in chip.history(LINE)] == [0, 1]
        assert states(probe) == [(0, "initial"), (1, "stop")]

    run(body)


# --- the chip going away ------------------------------------------------------------------


def test_an_unplugged_chip_fails_actions_then_the_line_comes_back_as_it_was() -> None:
    async def body() -> None:
        chip, probe = SimChip(), Probe()
        keys = {"reconnect": {"initial_delay": "10ms", "max_delay": "20ms"}}
        async with driving(chip, probe, **keys) as driver:
            await driver.set_output(True, cause="cmd")
            chip.unplug()
            await eventually(
                lambda: driver.health.state is DriverState.RECONNECTING, "reconnecting"
            )
            assert driver.state is None
            with pytest.raises(ActionError, match=r"^vent: GPIO line 4 on gpiochip0 is not open"):
                await driver.set_output(False, cause="cmd")
            chip.plug()
            await eventually(lambda: driver.health.state is DriverState.RUNNING, "reopened")
            assert driver.state is True  # driven again to what it held
            assert chip.driven(LINE) == 1
            assert await driver.set_output(False, cause="cmd") is False
            assert chip.driven(LINE) == 0
            assert driver.health.errors >= 1

    run(body)


def test_an_action_before_the_line_is_open_is_an_action_error() -> None:
    async def body() -> None:
        driver = output_on(SimChip(), Probe().context)
        assert driver.state is None
        with pytest.raises(ActionError, match="is not open"):
            await driver.toggle_output(cause="cmd")

    run(body)


# --- the config ------------------------------------------------------------------------------


def test_output_defaults() -> None:
    config = GPIO_CONFIG.validate_python({"name": "v", "line": 4, "mode": "output"})
    assert isinstance(config, GpioOutputConfig)
    assert (config.initial, config.on_stop, config.report, config.event) == (
        "off",
        "off",
        True,
        "state",
    )
    assert config.interlock.max_on is None


@pytest.mark.parametrize(
    ("keys", "where"),
    [
        ({"edge": "rising"}, "edge"),
        ({"debounce": "20ms"}, "debounce"),
        ({"interval": "1s"}, "interval"),
        ({"sim": {"kind": "button"}}, "sim"),
        ({"initial": "maybe"}, "initial"),
        ({"on_stop": "off-ish"}, "on_stop"),
        ({"interlock": {"max_on": 0}}, "max_on"),
        ({"interlock": {"min_on": 5, "max_on": 2}}, "interlock"),
    ],
)
def test_keys_that_do_not_fit_output_mode_are_schema_errors(
    keys: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        GPIO_CONFIG.validate_python({"name": "v", "line": 4, "mode": "output", **keys})
    assert where in str(caught.value)


def test_bare_yaml_on_and_off_are_the_words() -> None:
    config = GPIO_CONFIG.validate_python(
        {"name": "v", "line": 4, "mode": "output", "initial": True, "on_stop": False}
    )
    assert isinstance(config, GpioOutputConfig)
    assert (config.initial, config.on_stop) == ("on", "off")


def test_gpiod_requests_an_output_line_already_driven() -> None:
    """libgpiod v2: ``LineSettings(direction=OUTPUT, output_value=ACTIVE)``; the
    stand-in module's enums (tests.drivers.test_gpio_backends) play ``gpiod.line``."""
    from tests.drivers.test_gpio_backends import FakeGpiod  # noqa: PLC0415
    from tidegate.drivers.gpio.backend import LineSpec, _settings_kwargs  # noqa: PLC0415

    fake = FakeGpiod()
    spec = LineSpec(line=17, direction="output", output_value=1, active_low=True)
    assert _settings_kwargs(fake, spec) == {
        "direction": fake.line.Direction.OUTPUT,
        "output_value": fake.line.Value.ACTIVE,
        "bias": fake.line.Bias.AS_IS,
        "active_low": True,
    }
    off = _settings_kwargs(fake, LineSpec(line=17, direction="output"))
    assert off["output_value"] is fake.line.Value.INACTIVE


def test_the_gateway_builds_the_output_class_its_config_names() -> None:
    config = GPIO_CONFIG.validate_python(
        {"name": "vent", "backend": "sim", "line": LINE, "mode": "output"}
    )
    context = DriverContext("gw", lambda raw, reason: None)
    assert type(driver_types()["gpio"](config, context)) is GpioOutputDriver
    with pytest.raises(TypeError, match="run by GpioOutputDriver"):
        GpioDriver(config, context)
