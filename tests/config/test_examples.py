"""The example configurations in config/ are starting points users copy: each must pass
`tidegate check` as shipped, and run on a laptop with the one-line switches their
comments promise (`port: sim`, `backend: sim`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import TIDEGATE, laptop_version
from tidegate.config.loader import load_config, load_config_text
from tidegate.drivers.parsing.parse import FrameParser, FrameRejected

CONFIG = Path(__file__).resolve().parents[2] / "config"
EXAMPLES = sorted(CONFIG.glob("*.yaml"))
STARTING_POINTS = [path for path in EXAMPLES if path.name != "simulate.yaml"]


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    """config/ copied, with the files the examples name beside them (a CA, a password)."""
    copy = tmp_path / "config"
    shutil.copytree(CONFIG, copy)
    (copy / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (copy / "mqtt-password").write_text("secret\n")
    return copy


def test_there_are_starting_points_beside_the_demo() -> None:
    names = {path.name for path in STARTING_POINTS}
    assert {
        "pi-serial-gpio-tls.yaml",
        "mqtt-bridge.yaml",
        "serial-meter-modbus.yaml",
        "greenhouse-telegraf.yaml",
    } <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_loads(example: Path) -> None:
    config = load_config(example)
    assert config.drivers


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_tidegate_check(example: Path, config_copy: Path) -> None:
    env = {**os.environ, "TIDEGATE_MQTT_PASSWORD": "secret"}
    env.pop("TIDEGATE_CONFIG", None)
    done = subprocess.run(
        [*TIDEGATE, "check", "-c", str(config_copy / example.name)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": ok" in done.stdout


@pytest.mark.parametrize("example", STARTING_POINTS, ids=lambda p: p.name)
def test_starting_point_says_how_to_adapt_it(example: Path) -> None:
    head = example.read_text().split("\n\n", 1)[0]
    assert head.startswith("#")
    assert "To adapt it" in example.read_text()


@pytest.mark.parametrize("example", STARTING_POINTS, ids=lambda p: p.name)
def test_starting_point_switches_to_simulated_devices(example: Path) -> None:
    text = example.read_text()
    laptop = laptop_version(text)
    config = load_config_text(laptop, example.name, base=example.parent)
    for driver in config.drivers:
        if driver.type == "serial":
            assert getattr(driver, "port", None) == "sim", driver.name
        if driver.type == "gpio":
            assert getattr(driver, "backend", None) == "sim", driver.name
        if driver.type == "onewire":
            assert str(getattr(driver, "path", None)) == "sim", driver.name


def _parser(example: str, topic: str) -> FrameParser:
    config = load_config(CONFIG / example)
    for driver in config.drivers:
        for subscription in getattr(driver, "subscriptions", []):
            if subscription.topic == topic:
                return FrameParser(subscription.parse, source="device")
    raise AssertionError(f"no subscription to {topic} in {example}")


def test_bridge_reads_tasmota_and_zigbee2mqtt_messages_as_its_comments_say() -> None:
    tasmota = _parser("mqtt-bridge.yaml", "tele/+/SENSOR")
    climate = tasmota.parse(
        b'{"Time":"2024-05-01T12:00:00","AM2301":{"Temperature":21.5,"Humidity":40.2},'
        b'"TempUnit":"C"}',
        0.0,
    )
    assert {(e.name, e.value, e.unit) for e in climate} == {
        ("temperature", 21.5, "°C"),
        ("humidity", 40.2, "%"),
    }
    plug = tasmota.parse(
        b'{"Time":"2024-05-01T12:00:00","ENERGY":{"Total":12.3,"Power":45,"Voltage":231,'
        b'"Current":0.2}}',
        0.0,
    )
    assert {e.name: e.value for e in plug} == {"power": 45, "energy": 12.3, "voltage": 231}
    with pytest.raises(FrameRejected):  # none of the listed values: a dead letter
        tasmota.parse(b'{"Time":"2024-05-01T12:00:00","DS18B20":{"Temperature":4.5}}', 0.0)

    relay = _parser("mqtt-bridge.yaml", "stat/+/POWER")
    assert [e.value for e in relay.parse(b"ON", 0.0)] == [True]
    assert [e.value for e in relay.parse(b"OFF", 0.0)] == [False]

    zigbee = _parser("mqtt-bridge.yaml", "zigbee2mqtt/+")
    sensor = zigbee.parse(
        b'{"temperature":21.3,"humidity":45.1,"battery":97,"linkquality":120,"contact":true,'
        b'"update":{"state":"idle"}}',
        0.0,
    )
    assert {e.name: e.value for e in sensor} == {
        "temperature": 21.3,
        "humidity": 45.1,
        "battery": 97,
        "linkquality": 120,
        "contact": True,
    }
