"""Devices for the driver tests: real pseudo-terminals, a simulated GPIO chip.

``sim_for`` plugs in a simulated serial device on a pty (with a by-id style
link); ``serial_on`` runs the real serial driver on it. ``gpio_on`` builds the
gpio driver on a ``SimChip`` line, ``run_timeline`` plays edges on the chip's
fast clock and returns what the driver made of them. ``mqtt_on`` runs the mqtt
driver on a real broker, ``publish`` publishes to it like a device.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
from pydantic import TypeAdapter

from tests.drivers.harness import WAIT, Probe, eventually, running
from tidegate.driver import DriverContext, DriverState
from tidegate.drivers.gpio.config import GpioConfig
from tidegate.drivers.gpio.driver import GpioDriver
from tidegate.drivers.gpio.sim import SimChip
from tidegate.drivers.gpio.sim_backend import SimBackend
from tidegate.drivers.gpio.timelines import MS, Timeline
from tidegate.drivers.mqtt.config import MqttInputConfig
from tidegate.drivers.mqtt.driver import MqttDriver
from tidegate.drivers.serial.config import SerialConfig
from tidegate.drivers.serial.driver import SerialDriver
from tidegate.drivers.serial.sim import SerialSim, SerialSimConfig
from tidegate.event import Event

GPIO_CONFIG: TypeAdapter[GpioConfig] = TypeAdapter(GpioConfig)


@asynccontextmanager
async def serial_on(
    sim: SerialSim, probe: Probe, **overrides: Any
) -> AsyncIterator[SerialDriver]:
    """The driver on ``sim``'s port, running until the block ends; then it must stop cleanly."""
    config = SerialConfig.model_validate(
        {
            "name": "probe",
            "port": sim.config.link or sim.path,
            "baudrate": 115200,
            "framing": sim.config.framing.model_dump(),
            "parse": sim.config.parse.model_dump(by_alias=True),
            "reconnect": {"initial_delay": 0.02, "max_delay": 0.1},
            **overrides,
        }
    )
    async with running(SerialDriver(config, probe.context), probe) as driver:
        if sim.connected:
            await eventually(lambda: driver.health.state is DriverState.RUNNING, "the port open")
        yield driver


def sim_for(tmp_path: Path, **config: Any) -> SerialSim:
    """A simulated device on a pty, plugged in, reachable through a by-id style link."""
    config.setdefault("link", str(tmp_path / "serial" / "by-id" / "usb-sim-if00-port0"))
    sim = SerialSim(SerialSimConfig.model_validate(config))
    sim.open()
    return sim


async def run_timeline(
    chip: SimChip, driver: GpioDriver, line: int, timeline: Timeline, *, then_ns: int = 100 * MS
) -> list[Event]:
    """Play ``timeline`` on ``line``, let the clock run ``then_ns`` past its end,
    and return everything the driver emitted once it has caught up."""
    probe = Probe()
    async with running(driver, probe):
        end = chip.play(line, timeline)
        assert end is not None
        chip.run_until(end + then_ns)
        await asyncio.wait_for(chip.settled(), WAIT)
        assert driver.health.state is DriverState.RUNNING
        return probe.events


def counter_report(event: Event) -> dict[str, float]:
    """A gpio counter report's value: count, pulses, total, rate."""
    assert isinstance(event.value, dict)
    return {key: float(v) for key, v in event.value.items()}


def gpio_on(chip: SimChip, context: DriverContext, **keys: Any) -> GpioDriver:
    """The gpio driver on line 4 of ``chip`` (``keys`` add to or replace its config)."""
    config = GPIO_CONFIG.validate_python(
        {"name": "line", "type": "gpio", "backend": "sim", "line": 4, **keys}
    )
    return GpioDriver(config, context, backend=SimBackend(chip))


# --- a broker -------------------------------------------------------------------------

Message = tuple[str, bytes, int, bool]
"""topic, payload, qos, retain"""

SENSOR: list[dict[str, Any]] = [{"topic": "tele/+/SENSOR", "source": "{topic[1]}", "qos": 1,
           "parse": {"format": "json", "fields": {"t": {}}}}]
"""Tasmota-style sensors: tele/<device>/SENSOR with a JSON temperature."""


def mqtt_config(port: int, subscriptions: list[dict[str, Any]], **keys: Any) -> MqttInputConfig:
    """An mqtt driver for the broker on ``port``, quick to reconnect."""
    return MqttInputConfig.model_validate(
        {
            "name": "site",
            "type": "mqtt",
            "port": port,
            "reconnect": {"initial_delay": 0.05, "max_delay": 0.5},
            "connect_timeout": 2,
            "subscriptions": subscriptions,
            **keys,
        }
    )


@asynccontextmanager
async def mqtt_on(config: MqttInputConfig, probe: Probe) -> AsyncIterator[MqttDriver]:
    """The driver, subscribed, until the block ends; then it must stop cleanly."""
    async with running(MqttDriver(config, probe.context), probe) as driver:
        await eventually(lambda: driver.health.state is DriverState.RUNNING, "subscribed")
        yield driver


async def publish(port: int, messages: Sequence[Message], **client: Any) -> None:
    """Publish with another real client, each QoS > 0 message acknowledged in turn."""
    async with aiomqtt.Client("127.0.0.1", port, **client) as publisher:
        for topic, payload, qos, retain in messages:
            await publisher.publish(topic, payload, qos=qos, retain=retain)


def q1(topic: str, payload: bytes | str) -> Message:
    return (topic, payload.encode() if isinstance(payload, str) else payload, 1, False)
