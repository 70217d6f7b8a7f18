"""The onewire driver's config: its YAML example, defaults, and mistakes a user makes."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from tidegate.config.loader import load_config_text
from tidegate.drivers.onewire import config as onewire_config
from tidegate.drivers.onewire.config import OneWireConfig
from tidegate.drivers.onewire.sysfs import Reading, parse_w1_slave
from tidegate.errors import ConfigError


def test_the_yaml_example_loads() -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", onewire_config.__doc__ or "", re.S)
    tank, loft = load_config_text(block, "onewire/config.py").drivers
    assert isinstance(tank, OneWireConfig) and isinstance(loft, OneWireConfig)
    assert (tank.interval, len(tank.sensors), tank.discovers()) == (30.0, 4, False)
    assert tank.sensors[1].offset == -0.25 and tank.sensors[2].unit == "°F"
    assert (tank.sensors[3].id, tank.sensors[3].name) == ("28-0316a27b22ff", None)
    assert (loft.path, loft.discovers(), loft.sim.sensors) == ("sim", True, 3)
    assert loft.sim.faults.vanish_every == 600.0


def test_defaults_read_every_thermometer_on_the_kernels_bus() -> None:
    config = OneWireConfig.model_validate({"name": "w1"})
    assert (config.path, config.interval, config.unit, config.accept_85) == (
        "/sys/bus/w1/devices", 10.0, "°C", False
    )
    assert config.discovers() and config.families == ["10", "22", "28", "3b", "42"]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"sensors": [{"id": "28-0316a2795c"}]}, "is not a 1-Wire id"),
        ({"sensors": [{"id": "280316a2795cff"}]}, "is not a 1-Wire id"),
        ({"sensors": [{"id": "2d-0316a2795cff"}]}, "family 2d is not a temperature sensor"),
        ({"sensors": [{"id": "28-0316a2795cff"}, {"id": "28-0316A2795CFF"}]},
         "sensor id '28-0316a2795cff' is listed twice"),
        ({"sensors": [{"id": "28-0316a2795cff", "name": "t"},
                      {"id": "28-0316a27a11ff", "name": "t"}]}, "sensor name 't' is listed twice"),
        ({"interval": 0}, "greater than 0"),
        ({"families": ["2d"]}, "'10', '22', '28', '3b' or '42'"),
        ({"families": [45]}, "'10', '22', '28', '3b' or '42'"),
        ({"sensors": [{"id": "3b-0000001a2b3c", "range": [1800, -270]}]},
         "must be [low, high] with low < high"),
        ({"sensors": ["28-0316a2795c"]}, "is not a 1-Wire id"),
        ({"sim": {"sensors": 500}}, "0 to 100 sensors"),
        ({"sim": {"sensors": ["nope"]}}, "is not a 1-Wire id"),
    ],
)
def test_a_mistake_is_one_line_that_says_what_to_do(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OneWireConfig.model_validate({"name": "w1", **keys})
    assert message in str(caught.value)


def test_what_people_write_first_is_understood() -> None:
    # YAML reads `[28, 10]` as numbers; a bare id is a sensor with just an id.
    config = OneWireConfig.model_validate(
        {"name": "w1", "families": [28, 10, "3b", 42],
         "sensors": ["28-0316A2795CFF", {"id": "3b-0000001a2b3c", "range": [-270, 1372]}]}
    )
    assert config.families == ["28", "10", "3b", "42"]
    assert [s.id for s in config.sensors] == ["28-0316a2795cff", "3b-0000001a2b3c"]
    assert config.sensors[0].limits() is None
    assert config.sensors[1].limits() == (-270_000, 1_372_000)


def test_the_loader_points_at_the_line() -> None:
    text = "drivers:\n  - name: w1\n    type: onewire\n    sensors:\n      - id: 28-xyz\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gw.yaml")
    assert "gw.yaml:5" in str(caught.value) and "not a 1-Wire id" in str(caught.value)


def test_sensors_listed_twice_are_each_reported_at_the_second_listing() -> None:
    text = (
        "drivers:\n  - name: w1\n    type: onewire\n    sensors:\n"
        "      - {id: 28-0316a2795cff, name: top}\n"
        "      - {id: 28-0316A2795CFF, name: bottom}\n"
        "      - {id: 28-0316a27a11ff, name: top}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gw.yaml")
    assert caught.value.messages == [
        "gw.yaml:6:14: drivers[0].sensors[1].id: sensor id '28-0316a2795cff' is listed twice",
        "gw.yaml:7:37: drivers[0].sensors[2].name: sensor name 'top' is listed twice",
    ]


HARDWARE_NOTE = Path(__file__).resolve().parents[3] / "hardware" / "onewire-i2c.md"


def test_the_hardware_notes_configs_load_and_its_sample_parses() -> None:
    text = HARDWARE_NOTE.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    drivers = "drivers:\n" + "".join(textwrap.indent(block, "  ") for block in blocks)
    config = load_config_text(drivers, "hardware/onewire-i2c.md")
    assert [(d.name, d.type) for d in config.drivers] == [("tank", "onewire"), ("loft", "onewire")]
    (sample,) = re.findall(r"w1_slave\n(.*? t=\d+)\n", text, re.S)
    assert parse_w1_slave(sample) == Reading(23125)
