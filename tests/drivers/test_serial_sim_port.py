"""``port: sim``: the real serial driver reading a simulated device on a real pty.

The driver starts the simulated device itself and opens the pty's slave path with
pyserial, as it opens /dev/ttyUSB0; these tests only ever see ``emit`` and
``context.reject``. Switching a config between laptop and device is the ``port:`` line.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.drivers import harness
from tests.drivers.harness import Probe, eventually
from tidegate.config.loader import load_config_text
from tidegate.driver import Driver, DriverConfig, DriverState
from tidegate.driver_kinds import driver_types
from tidegate.drivers.serial.config import SerialConfig
from tidegate.drivers.serial.driver import SerialDriver
from tidegate.drivers.serial.sim_config import typical_signal
from tidegate.errors import ConfigError


@asynccontextmanager
async def running(config: DriverConfig, probe: Probe) -> AsyncIterator[Driver]:
    """The driver the pipeline would build for ``config``, running until the block ends."""
    driver = driver_types()[config.type](config, probe.context)
    async with harness.running(driver, probe):
        yield driver


def serial_driver(driver: Driver) -> SerialDriver:
    assert isinstance(driver, SerialDriver)
    return driver


def one_driver(text: str) -> DriverConfig:
    (config,) = load_config_text(text, "test.yaml").drivers
    return config


WEATHER_ON_THE_DEVICE = """
drivers:
  - name: weather
    type: serial
    port: /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_nonexistent-if00-port0
    baudrate: 9600
    framing: {type: line}
    parse:
      format: kv
      fields:
        T: {name: temperature, unit: "°C"}
        H: {name: humidity, unit: "%"}
        P: {name: pressure, unit: hPa}
    reconnect: {initial_delay: 20ms, max_delay: 100ms}
    sim: {rate: 50, seed: 1}
"""
WEATHER_ON_A_LAPTOP = WEATHER_ON_THE_DEVICE.replace(
    "    port: /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_nonexistent-if00-port0",
    "    port: sim",
)


def test_switching_between_device_and_laptop_is_the_port_line() -> None:
    changed = [
        line for line in difflib.ndiff(WEATHER_ON_THE_DEVICE.splitlines(),
                                       WEATHER_ON_A_LAPTOP.splitlines())
        if line[:1] in "+-"
    ]
    assert len(changed) == 2  # one line out, one line in

    async def scenario() -> None:
        absent = Probe()
        async with running(one_driver(WEATHER_ON_THE_DEVICE), absent) as driver:
            await eventually(lambda: driver.health.state is DriverState.RECONNECTING,
                             "the missing device")
            assert driver.health.last_error is not None
            assert "cannot open /dev/serial/by-id/usb-FTDI" in driver.health.last_error
        probe = Probe()
        async with running(one_driver(WEATHER_ON_A_LAPTOP), probe) as driver:
            await eventually(lambda: len(probe.values("pressure")) >= 5, "five readings")
            path = serial_driver(driver).port_path
            assert path.startswith("/dev/pts/")  # the pty's slave, opened by path
            assert driver.health.state is DriverState.RUNNING
        assert probe.rejects == []
        # Realistic readings for what the fields are, not one default for all of them.
        assert all(15 < t < 27 for t in probe.values("temperature"))
        assert all(25 < h < 65 for h in probe.values("humidity"))
        assert all(1000 < p < 1026 for p in probe.values("pressure"))
        assert {(e.name, e.unit) for e in probe.events} == {
            ("temperature", "°C"), ("humidity", "%"), ("pressure", "hPa")
        }

    asyncio.run(scenario())


def test_a_polled_sensor_is_answered_when_the_driver_asks() -> None:
    text = WEATHER_ON_A_LAPTOP.replace(
        "    sim: {rate: 50, seed: 1}",
        # Once per 100 s on its own: the frames that arrive are answers to the polls.
        '    sim: {rate: 0.01, seed: 1}\n'
        '    poll: {request: "READ\\r\\n", every: 50ms, response_timeout: 45ms}',
    )

    async def scenario() -> None:
        probe = Probe()
        async with running(one_driver(text), probe):
            await eventually(lambda: len(probe.values("temperature")) >= 4, "four answers")
        assert probe.rejects == []

    asyncio.run(scenario())


PMS5003 = """
drivers:
  - name: air
    type: serial
    port: sim
    framing:
      type: binary
      start: "42 4d"
      length: {offset: 2, size: 2, byte_order: big, adjust: 4}
      checksum: {type: sum16}
      max_length: 64
    parse:
      format: struct
      byte_order: big
      fields:
        pm1_0: {offset: 10, type: u16, unit: "µg/m³"}
        pm2_5: {offset: 12, type: u16, unit: "µg/m³"}
        pm10: {offset: 14, type: u16, unit: "µg/m³"}
    sim: {rate: 50, frame_length: 32, seed: 2}
"""


def test_binary_frames_with_checksums_through_the_pty() -> None:
    async def scenario() -> None:
        probe = Probe()
        async with running(one_driver(PMS5003), probe):
            await eventually(lambda: len(probe.values("pm10")) >= 5, "five PMS5003 frames")
        assert probe.rejects == []
        for name in ("pm1_0", "pm2_5", "pm10"):
            values = probe.values(name)
            assert values and all(isinstance(v, int) and 0 <= v <= 30 for v in values), values

    asyncio.run(scenario())


def test_faults_and_unplugs_are_counted_and_survived(tmp_path: Path) -> None:
    link = tmp_path / "serial" / "by-id" / "usb-sim-weather"
    text = WEATHER_ON_A_LAPTOP.replace(
        "    sim: {rate: 50, seed: 1}",
        f"    sim: {{rate: 200, seed: 3, link: {link},\n"
        "          faults: {garbage: 0.1, corrupt: 0.1, disconnect_every: 300ms,"
        " disconnect_for: 50ms}}",
    )

    async def scenario() -> None:
        probe = Probe()
        async with running(one_driver(text), probe) as driver:
            serial = serial_driver(driver)
            await eventually(
                lambda: serial.opens >= 3 and len(probe.rejects) >= 3 and len(probe.events) >= 30,
                "reopens after unplugs, rejects, and events all along",
            )
            assert serial.port_path == str(link)  # the stable name, like /dev/serial/by-id
        reasons = {reason for _, reason in probe.rejects}
        assert reasons, "faults were injected"
        assert not link.exists()  # the simulated device was unplugged at the end

    asyncio.run(scenario())


def test_a_regex_parser_needs_a_template_to_simulate() -> None:
    regex = """
drivers:
  - name: wind
    type: serial
    port: {port}
    parse:
      format: regex
      pattern: '^\\$WIMWV,(?P<angle>[0-9.]+),R,(?P<speed>[0-9.]+),N'
      unlisted: include
"""
    one_driver(regex.replace("{port}", "/dev/ttyUSB0"))  # fine on the device
    with pytest.raises(ConfigError, match=r"give `sim.template`"):
        one_driver(regex.replace("{port}", "sim"))
    template = "    sim: {template: '$WIMWV,{angle:.1f},R,{speed:.1f},N'}\n"
    config = one_driver(regex.replace("{port}", "sim") + template)
    assert isinstance(config, SerialConfig)
    assert config.simulated_device().template is not None


@pytest.mark.parametrize(
    ("key", "name", "unit", "base"),
    [
        ("T", "temperature", "°C", 21.0),
        ("hum", None, None, 45.0),
        ("P", "pressure", None, 1013.0),
        ("x", None, "hPa", 1013.0),
        ("pm2_5", None, "µg/m³", 12.0),
        ("co2", None, "ppm", 600.0),
        ("count", None, None, None),
    ],
)
def test_typical_signals_by_name_or_unit(
    key: str, name: str | None, unit: str | None, base: float | None
) -> None:
    signal = typical_signal(key, name, unit)
    assert (signal.base if signal else None) == base


# The lines to add under `drivers:` in config/simulate.yaml, so that `tidegate simulate`
# shows a serial sensor and GPIO inputs next to the sim signals. Kept here so that a
# test proves they load and run.
DEMO_DRIVERS = """
  - name: weather-station    # a serial sensor; on the device: port: /dev/serial/by-id/...
    type: serial
    port: sim
    baudrate: 9600
    framing: {type: line}
    parse:
      format: kv
      fields:
        T: {name: temperature, unit: "°C"}
        H: {name: humidity, unit: "%"}
        P: {name: pressure, unit: hPa}
    sim: {rate: 2, faults: {garbage: 0.01, corrupt: 0.01}}
  - name: door               # a reed switch to ground; on the device: backend: gpiod
    type: gpio
    backend: sim
    line: 17
    mode: edge
    bias: pull-up
    active_low: true
    debounce: 20ms
    sim: {kind: button, presses_per_minute: 6, bounces: 10, bounce_window: 5ms, hold: 2s}
  - name: water-meter        # a pulse output, one pulse per litre
    type: gpio
    backend: sim
    line: 27
    mode: counter
    interval: 2s
    per_pulse: 0.001
    unit: m3
    rate_per: 1h
    sim: {kind: pulses, rate_hz: 5, jitter: 0.05}
"""


def test_the_demo_drivers_load_and_run() -> None:
    drivers = load_config_text("drivers:" + DEMO_DRIVERS, "simulate.yaml").drivers
    assert [d.type for d in drivers] == ["serial", "gpio", "gpio"]

    async def scenario() -> None:
        weather, meter = Probe(), Probe()
        async with running(drivers[0], weather), running(drivers[2], meter):
            await eventually(
                lambda: len(weather.values("temperature")) >= 1 and len(meter.events) >= 1,
                "a serial reading and a meter report",
            )

    asyncio.run(scenario())
