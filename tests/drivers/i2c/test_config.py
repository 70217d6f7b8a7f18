"""The i2c driver's config: the YAML example, one-line errors, no I/O when built."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from pathlib import Path

import pytest
import yaml

from tests.drivers.harness import Probe, eventually, running
from tests.drivers.i2c.conformance_case import absent_i2c
from tidegate.config.loader import load_config_text
from tidegate.driver import DriverState
from tidegate.drivers.i2c import config as i2c_config
from tidegate.drivers.i2c.config import I2cConfig
from tidegate.drivers.i2c.devices import Ads1115Device, Bme280Device, GenericDevice
from tidegate.drivers.i2c.driver import I2cDriver
from tidegate.errors import ConfigError


def test_yaml_example_loads() -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", i2c_config.__doc__ or "", re.S)
    (driver,) = yaml.safe_load(block)["drivers"]
    env = I2cConfig.model_validate(driver)
    garden, _, light, adc, lux2 = env.devices
    assert isinstance(garden, Bme280Device) and garden.address == 0x76
    assert garden.oversampling.pressure == 4
    assert env.interval_of(light) == 5.0 and env.interval_of(garden) == 30.0
    assert isinstance(adc, Ads1115Device) and adc.channels[1].full_scale == 0.256
    assert isinstance(lux2, GenericDevice) and lux2.registers[0].reg == 0xAC
    assert [d.type for d in load_config_text(block, "i2c/config.py").drivers] == ["i2c"]


def error(devices: str, bus: str = "1") -> str:
    text = f"drivers:\n  - name: env\n    type: i2c\n    bus: {bus}\n    devices:\n{devices}"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "i2c.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ("      - {name: g, chip: bme280, address: 0x44}\n",
         "i2c.yaml:6:42: drivers[0].devices[0].address: a BME280/BMP280 answers at 0x76 or "
         "0x77, not at 0x44"),
        ("      - {name: g, chip: bme28}\n",
         "i2c.yaml:6:25: drivers[0].devices[0].chip: unknown chip 'bme28' (did you mean "
         "'bme280'?); known: bme280, sht3x, ads1115, bh1750, generic"),
        ("      - {name: g, address: 0x99, registers: [{name: a, register: 1}]}\n",
         "i2c.yaml:6:28: drivers[0].devices[0].address: 0x99 is not a 7-bit device address "
         "(0x03 to 0x77)"),
        ("      - {name: g, address: '0x2g', registers: [{name: a, register: 1}]}\n",
         "i2c.yaml:6:28: drivers[0].devices[0].address: '0x2g' is not an address; write e.g. "
         "0x76"),
        ("      - {name: g, chip: sht3x}\n      - {name: h, chip: sht3x}\n",
         # The second chip, at its default address: its item, the key named.
         "i2c.yaml:7:9: drivers[0].devices[1].address: 'g' and 'h' both use address 0x44"),
        ("      - {name: g, chip: sht3x, address: 0x44}\n      - {name: g, chip: sht3x, "
         "address: 0x44}\n",
         "i2c.yaml:7:16: drivers[0].devices[1].name: two devices are named 'g'\n"
         "i2c.yaml:7:41: drivers[0].devices[1].address: 'g' and 'g' both use address 0x44"),
        ("      - {name: g, address: 0x20, registers: [{name: x, register: 1, type: f32, "
         "shift: 4}]}\n",
         "i2c.yaml:6:87: drivers[0].devices[0].registers[0].shift: `shift` applies to integer "
         "types only"),
        ("      - {name: g, chip: ads1115, channels: [{name: a, input: AIN0}, "
         "{name: a, input: AIN1}]}\n",
         "i2c.yaml:6:76: drivers[0].devices[0].channels[1].name: two channels are named 'a'"),
        ("      - {name: g, address: 0x20, registers: [{name: x, register: 1}, "
         "{name: x, register: 2}]}\n",
         "i2c.yaml:6:77: drivers[0].devices[0].registers[1].name: two registers are named 'x'"),
        ("      - {name: g, chip: ads1115, channels: [{name: a, input: AIN0, full_scale: 3.3}]}\n",
         "i2c.yaml:6:80: drivers[0].devices[0].channels[0].full_scale: must be one of 6.144, "
         "4.096, 2.048, 1.024, 0.512, 0.256 (volts)"),
    ],
)
def test_errors_are_one_line_at_their_place(devices: str, message: str) -> None:
    assert error(devices) == message


def test_a_hex_string_address_and_a_bus_path_are_accepted() -> None:
    env = I2cConfig.model_validate({"name": "env", "bus": "/dev/i2c-3", "devices": [
        {"name": "x", "address": "0x29", "registers": [{"name": "a", "register": 1}]}]})
    assert env.devices[0].address == 0x29


def test_a_quoted_bus_number_and_an_upper_case_chip_are_accepted() -> None:
    (env,) = load_config_text(
        "drivers:\n  - {name: env, type: i2c, bus: '1', devices: [{name: g, chip: BME280}]}\n",
        "i2c.yaml").drivers
    assert isinstance(env, I2cConfig) and env.bus == 1
    assert isinstance(env.devices[0], Bme280Device)


@pytest.mark.parametrize(
    ("bus", "devices", "message"),
    [
        ("two", "      - {name: g, chip: sht3x}\n",
         "i2c.yaml:4:10: drivers[0].bus: must be a number (`1` is /dev/i2c-1), a /dev path "
         "or `sim`, not 'two'"),
        ("i2c-1", "      - {name: g, chip: sht3x}\n",
         "i2c.yaml:4:10: drivers[0].bus: write `bus: 1` or `bus: /dev/i2c-1`, not 'i2c-1'"),
        ("1", "      - {name: g, chip: bme280, address: 76}\n",
         "i2c.yaml:6:42: drivers[0].devices[0].address: a BME280/BMP280 answers at 0x76 or "
         "0x77, not at 0x4c (76 decimal; did you mean 0x76?)"),
        ("1", "      - {name: g, chip: sht3x, address: 45}\n",
         "i2c.yaml:6:41: drivers[0].devices[0].address: a SHT3x answers at 0x44 or 0x45, not "
         "at 0x2d (45 decimal; did you mean 0x45?)"),
    ],
)
def test_bus_and_address_mistakes_say_what_was_meant(bus: str, devices: str,
                                                     message: str) -> None:
    assert error(devices, bus) == message


def open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found


def test_the_constructor_does_no_io(tmp_path: Path) -> None:
    # What tests/drivers/test_conformance.py checks, on the config it will use.
    files, threads = open_files(), threading.active_count()
    probe = Probe()
    driver = I2cDriver(I2cConfig.model_validate(absent_i2c(tmp_path)), probe.context)
    assert open_files() == files and threading.active_count() == threads
    assert driver.health.state is DriverState.STARTING

    async def scenario() -> None:
        async with running(driver, probe):
            await eventually(lambda: driver.health.state is DriverState.RECONNECTING, "retrying")
            assert driver.health.last_error == (
                f"{tmp_path / 'i2c-77'} does not exist: enable I²C: `sudo raspi-config nonint "
                "do_i2c 0` (or `dtparam=i2c_arm=on` in /boot/firmware/config.txt and `i2c-dev` in "
                "/etc/modules-load.d/i2c.conf), then reboot (hardware/onewire-i2c.md)"
            )

    asyncio.run(scenario())
    assert probe.rejects == []
