"""The serial driver's config: its YAML examples, commands it writes, what it refuses,
and the ``reconnect:`` section it shares with every reconnecting part of tidegate."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tidegate.backoff import ReconnectSection
from tidegate.drivers.serial import config as serial_config
from tidegate.drivers.serial import sim_config as serial_sim_config
from tidegate.drivers.serial.commands import HexCommand
from tidegate.drivers.serial.config import SerialConfig
from tidegate.drivers.serial.sim import SerialSimConfig


def test_hex_command_with_modbus_crc() -> None:
    command = HexCommand.model_validate(
        {"hex": "01 03 00 00 00 0a", "checksum": "crc16-modbus"}
    )
    assert command.encode() == bytes.fromhex("01 03 00 00 00 0A C5 CD")
    pms_read = HexCommand.model_validate({"hex": "42 4d e2 00 00", "checksum": "sum16"})
    assert pms_read.encode() == bytes.fromhex("42 4d e2 00 00 01 71")


def yaml_blocks(doc: str | None) -> list[Any]:
    assert doc is not None
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", doc, re.S)]


def test_module_docstring_yaml_loads_through_the_config_class() -> None:
    (example,) = yaml_blocks(serial_config.__doc__)
    configs = [SerialConfig.model_validate(entry) for entry in example["drivers"]]
    weather, air, dust = configs
    assert dust.framing.type == "binary" and dust.framing.end == b"\xab"
    assert weather.poll is not None and weather.poll.on_open == [b"MODE KV\r\n"]
    assert weather.reconnect.initial_delay == 0.5
    assert air.framing.type == "binary" and air.parse.format == "struct"
    (sim_example,) = yaml_blocks(serial_sim_config.__doc__)
    assert SerialSimConfig.model_validate(sim_example).faults.disconnect_every == 300


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stopbits": 3}, "stop bits"),
        ({"parity": "strange"}, "none"),
        ({"poll": {"request": "R"}}, "go together"),
        ({"poll": {"request": "R", "every": "1s", "response_timeout": "2s"}}, "response_timeout"),
        ({"baudrate": 0}, "greater than 0"),
        ({"framing": {"type": "lines"}}, "line"),
        ({"prot": "/dev/ttyUSB0"}, "Extra inputs"),
    ],
)
def test_bad_config_is_refused(change: dict[str, Any], message: str) -> None:
    base = {"name": "s", "port": "/dev/ttyUSB0", "parse": {"format": "raw"}}
    with pytest.raises(ValueError, match=message):
        SerialConfig.model_validate({**base, **change})


def test_reconnect_is_the_shared_reconnect_section() -> None:
    config = SerialConfig.model_validate(
        {"name": "s", "port": "/dev/ttyUSB0", "parse": {"format": "raw"},
         "reconnect": {"initial_delay": "100ms", "max_delay": "2s", "factor": 3, "jitter": False}}
    )
    assert isinstance(config.reconnect, ReconnectSection)
    assert [config.reconnect.delay(n) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.3, 0.9, 2])
    with pytest.raises(ValueError, match="must not exceed"):
        SerialConfig.model_validate(
            {"name": "s", "port": "/dev/ttyUSB0", "parse": {"format": "raw"},
             "reconnect": {"initial_delay": "10s", "max_delay": "1s"}}
        )
