"""The gpio driver's config: one model per mode, its YAML example, keys that do not fit."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tests.drivers.devices import GPIO_CONFIG
from tidegate.config.loader import load_config_text
from tidegate.driver import DriverContext
from tidegate.drivers.gpio import config as gpio_config
from tidegate.drivers.gpio.config import (
    ButtonSim,
    GpioCounterConfig,
    GpioEdgeConfig,
    GpioLevelConfig,
    GpioOutputConfig,
)
from tidegate.drivers.gpio.driver import GpioDriver
from tidegate.errors import ConfigError

CONTEXT = DriverContext(gateway_id="test-gw", reject=lambda raw, reason: None)


def test_yaml_example_loads() -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", gpio_config.__doc__ or "", re.S)
    configs = [GPIO_CONFIG.validate_python(d) for d in yaml.safe_load(block)["drivers"]]
    button, meter, vent = configs
    assert isinstance(button, GpioEdgeConfig) and isinstance(meter, GpioCounterConfig)
    assert (button.line, button.debounce, button.active_low, button.bias, button.edge) == (
        "GPIO17", 0.02, True, "pull-up", "rising"
    )
    assert isinstance(button.sim, ButtonSim) and button.sim.bounce_window == 0.005
    assert button.reconnect.initial_delay == 0.5
    assert (meter.mode, meter.per_pulse, meter.rate_per, meter.interval) == (
        "counter", 0.001, 3600.0, 10.0
    )
    assert meter.sim.kind == "pulses"
    GpioDriver(meter, CONTEXT)  # a sim config builds its chip without I/O
    assert isinstance(vent, GpioOutputConfig)
    assert (vent.initial, vent.on_stop, vent.active_low) == ("off", "off", True)
    assert (vent.interlock.min_off, vent.interlock.max_switches_per_hour) == (180.0, 6)
    assert [d.type for d in load_config_text(block, "gpio/config.py").drivers] == ["gpio"] * 3


def test_each_mode_has_its_own_defaults() -> None:
    edge, counter, level = (
        GPIO_CONFIG.validate_python({"name": "x", "line": 4, **mode})
        for mode in ({}, {"mode": "counter"}, {"mode": "level"})
    )
    assert isinstance(edge, GpioEdgeConfig)
    assert (edge.edge, edge.event, edge.sim.kind) == ("both", "edge", "button")
    assert isinstance(counter, GpioCounterConfig)
    assert (counter.edge, counter.event, counter.sim.kind) == ("rising", "count", "pulses")
    assert isinstance(level, GpioLevelConfig)
    assert (level.counted_edges(), level.event, level.sim.kind) == ("none", "level", "levels")


@pytest.mark.parametrize(
    "keys",
    [
        {"on_change": True},  # level mode only
        {"per_pulse": 0.5},  # counter mode only
        {"interval": "1s"},  # counter and level modes only
        {"mode": "level", "edge": "rising"},
        {"mode": "counter", "on_change": True},
        {"mode": "sideways"},
        {"debounce": "soon"},
        {"line": -1},
        {"bias": "pull-sideways"},
        {"sim": {"kind": "pulses", "rate_hz": 0}},
        {"reconnect": {"initial_delay": "10s", "max_delay": "1s"}},
        {"reconnect_min": "1s"},  # the old key: now `reconnect: {initial_delay: ...}`
        {"colour": "blue"},
    ],
)
def test_config_refuses_keys_that_do_not_fit(keys: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GPIO_CONFIG.validate_python({"name": "x", "type": "gpio", "line": 4, **keys})


def test_a_key_of_another_mode_is_reported_at_its_line() -> None:
    text = (
        "drivers:\n"
        "  - name: door\n"
        "    type: gpio\n"
        "    line: 17\n"
        "    edge: rising\n"
        "    per_pulse: 0.5\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gpio.yaml")
    assert str(caught.value).startswith(
        "gpio.yaml:6:5: drivers[0].per_pulse: unknown key 'per_pulse'"
    ), str(caught.value)
