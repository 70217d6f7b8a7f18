"""The ``sim:`` block of a modbus driver, read by the real config loader."""

from __future__ import annotations

import pytest
import yaml

from tidegate.config.loader import load_config_text
from tidegate.drivers.modbus import sim_config
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.sim_config import (
    CounterValue,
    FixedValue,
    ModbusSimSection,
    ToggleValue,
    WaveValue,
)
from tidegate.errors import ConfigError

HEAD = """
drivers:
  - name: meters
    type: modbus
    port: sim
    devices:
      - name: mains
        slave: 1
        registers:
          - {name: voltage, table: input, address: 0, type: f32}
          - {name: relay, table: coil, address: 0}
          - {name: model, table: holding, address: 10, type: string, length: 2}
          - {name: setpoint, table: holding, address: 12, type: i16, scale: 0.1}
    sim:
"""


def sim_of(block: str) -> ModbusSimSection:
    (config,) = load_config_text(HEAD + block, "meters.yaml").drivers
    assert isinstance(config, ModbusConfig) and config.sim is not None
    return config.sim


def test_the_docstring_example_is_valid() -> None:
    assert sim_config.__doc__ is not None
    example = sim_config.__doc__.split("```yaml\n")[1].split("```")[0]
    sim = ModbusSimSection.model_validate(yaml.safe_load(example)["sim"])
    assert sim.seed == 7 and sim.faults.exception_code == 6
    assert sim.device_faults["meter2"].silent_every == 300
    assert sim.values["serial_number"] == FixedValue(kind="fixed", value=2001234)


def test_each_kind_of_value() -> None:
    sim = sim_of(
        "      values:\n"
        "        voltage: {base: 230, amplitude: 4, period: 10m, noise: 0.3}\n"
        "        mains.voltage: {kind: counter, start: 10, increase: 2, every: 1h}\n"
        "        relay: {kind: toggle, every: 30s}\n"
        "        mains.relay: true\n"
    )
    assert sim.values["voltage"] == WaveValue(base=230, amplitude=4, period=600, noise=0.3)
    assert sim.values["mains.voltage"] == CounterValue(
        kind="counter", start=10, increase=2, every=3600
    )
    assert sim.values["relay"] == ToggleValue(kind="toggle", every=30)
    assert sim.values["mains.relay"] == FixedValue(kind="fixed", value=True)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("      values: {voltage: {kind: ramp}}",
         "meters.yaml:15:32: drivers[0].sim.values.voltage.kind: unknown kind 'ramp'; known: "
         "wave, counter, fixed, toggle"),
        ("      values: {voltage: {base: 1, increase: 2}}",
         "meters.yaml:15:35: drivers[0].sim.values.voltage.increase: unknown key 'increase'; "
         "`increase` is a key of kind: counter"),
        ("      faults: {timeout: 0.7, exception: 0.5}",
         "meters.yaml:15:15: drivers[0].sim.faults: timeout + bad_crc + exception is a "
         "chance per request: at most 1"),
        ("      faults: {bad_crc: 2}",
         "meters.yaml:15:25: drivers[0].sim.faults.bad_crc: input should be less than or "
         "equal to 1, got 2"),
        ("      faults: {silent_every: soon}",
         "meters.yaml:15:30: drivers[0].sim.faults.silent_every: 'soon' is not a duration"),
    ],
)
def test_mistakes_are_one_line_at_their_place(block: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(HEAD + block + "\n", "meters.yaml")
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text.strip()


@pytest.mark.parametrize(
    ("block", "message"),
    [
        # A name that fits no register: at the name (the key), each one.
        ("values: {voltag: 1.0}",
         "meters.yaml:15:16: drivers[0].sim.values.voltag: 'voltag' names no register"),
        ("values: {mains.voltag: 1.0}",
         "meters.yaml:15:16: drivers[0].sim.values.mains.voltag: 'mains.voltag' names no "
         "register"),
        ("device_faults: {boilr: {timeout: 0.5}}",
         "meters.yaml:15:23: drivers[0].sim.device_faults.boilr: no device is named 'boilr'"),
        # A value the register cannot hold: at the value.
        ("values: {model: 12}",
         "meters.yaml:15:23: drivers[0].sim.values.model: device 'mains': register 'model': "
         "expects text"),
        ("values: {model: too long for two}",
         "meters.yaml:15:23: drivers[0].sim.values.model: device 'mains': register 'model': "
         "16 bytes of text do not fit in 4"),
        ("values: {relay: 'on'}",
         "meters.yaml:15:23: drivers[0].sim.values.relay: device 'mains': register 'relay': "
         "a bit is true or false"),
        ("values: {setpoint: 99999}",
         "meters.yaml:15:26: drivers[0].sim.values.setpoint: device 'mains': register "
         "'setpoint': 99999 is raw 999990, outside i16"),
        ("values: {voltage: {kind: toggle}}",
         "meters.yaml:15:16: drivers[0].sim.values.voltage: device 'mains': register "
         "'voltage': expects a number"),
    ],
)
def test_a_sim_block_that_does_not_fit_the_map_is_refused_at_its_key(
    block: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(HEAD + "      " + block + "\n", "meters.yaml")
    (text,) = caught.value.messages
    assert text.startswith(message), text


def test_every_misfit_of_a_sim_block_is_reported_at_once() -> None:
    block = "      values: {voltag: 1.0, setpoint: 99999}\n      device_faults: {boilr: {}}\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(HEAD + block, "meters.yaml")
    assert [m.split(": ")[1] for m in caught.value.messages] == [
        "drivers[0].sim.values.voltag",
        "drivers[0].sim.values.setpoint",
        "drivers[0].sim.device_faults.boilr",
    ]


def test_a_real_port_ignores_the_sim_block() -> None:
    """Switching to a device is the one `port:` line: a stale `sim:` block is no error."""
    text = (HEAD + "      values: {voltag: 1.0}\n").replace("port: sim", "port: /dev/ttyUSB0")
    (config,) = load_config_text(text, "meters.yaml").drivers
    assert isinstance(config, ModbusConfig) and config.sim is not None
