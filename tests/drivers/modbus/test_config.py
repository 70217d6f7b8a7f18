"""The modbus driver's config: its YAML example, and what it refuses, in one line each
with where (through the real loader, as `tidegate check` reports it)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tidegate.config.loader import load_config_text
from tidegate.drivers.modbus import config as modbus_config
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.errors import ConfigError


def test_module_docstring_yaml_loads_through_the_config_class() -> None:
    assert modbus_config.__doc__ is not None
    (block,) = re.findall(r"```yaml\n(.*?)```", modbus_config.__doc__, re.S)
    meters, inverter = (ModbusConfig.model_validate(d) for d in yaml.safe_load(block)["drivers"])
    assert (meters.port is not None, meters.tcp, inverter.tcp) == (True, False, True)
    boiler = meters.device("boiler")
    assert boiler is not None and boiler.slave == 7 and meters.device_interval(boiler) == 5
    enabled = boiler.register("enabled")
    assert enabled is not None and (enabled.type, enabled.writable) == ("bool", True)
    status = boiler.register("status")
    assert status is not None and status.event_names() == ["burner", "pump", "fault"]
    model = inverter.devices[0].register("model")
    assert model is not None and model.words == 10
    # 3.5 characters of 11 bits at 9600 baud; 0 on TCP.
    assert meters.gap_seconds == pytest.approx(3.5 * 11 / 9600)
    assert inverter.gap_seconds == 0


def document(driver: dict[str, Any]) -> str:
    base = {"name": "bus", "port": "/dev/ttyUSB0",
            "devices": [{"name": "meter", "slave": 1,
                         "registers": [{"name": "v", "address": 0}]}]}
    drivers = [{"type": "modbus", **base, **driver}]
    return yaml.safe_dump({"gateway": {"id": "gw"}, "drivers": drivers}, sort_keys=False)


def refusal(driver: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config_text(document(driver), "gw.yaml")
    (message,) = caught.value.messages
    assert "\n" not in message
    return message


def register(**fields: Any) -> dict[str, Any]:
    return {"devices": [{"name": "meter", "slave": 1,
                         "registers": [{"name": "v", "address": 0, **fields}]}]}


@pytest.mark.parametrize(
    ("driver", "expected"),
    [
        ({"host": "10.0.0.2"}, "give `port` (Modbus RTU) or `host` (Modbus TCP), not both"),
        ({"port": None}, "give `port` (Modbus RTU: a serial device) or `host` (Modbus TCP)"),
        (register(table="coil", type="u16"), "a coil holds single bits: leave `type` out"),
        (register(type="bool"), "type bool goes with tables coil and discrete"),
        (register(type="string"), "a string needs `length`"),
        (register(type="u32", length=2), "`length` is for string and bitfield only"),
        (register(type="bitfield", bits={"alarm": 16}), "bit 'alarm' is not within 0..15"),
        (register(type="string", length=2, scale=0.1), "`scale` is for numeric types"),
        (register(scale=0), "`scale: 0`"),
        (register(address=65535, type="u32"), "run past address 65535"),
        (register(address=-1), "greater than or equal to 0"),
        (register(table="holdings"), "'holding', 'input', 'coil' or 'discrete'"),
        ({"devices": [{"name": "a", "slave": 1, "registers": [{"name": "v", "address": 0}]},
                      {"name": "b", "slave": 1, "registers": [{"name": "v", "address": 0}]}]},
         "two devices have slave id 1"),
        ({"devices": [{"name": "a", "slave": 1, "registers": [{"name": "v", "address": 0},
                                                               {"name": "v", "address": 1}]}]},
         "two registers or bits are named 'v'"),
        ({"devices": [{"name": "a", "slave": 1, "max_read": 1,
                       "registers": [{"name": "v", "address": 0, "type": "f32"}]}]},
         "spans 2 registers, more than one read of `max_read: 1`"),
        ({"timeout": "soon"}, "is not a duration"),
        ({"parity": "mark"}, "'none', 'even' or 'odd'"),
        # Slave 0 is the serial broadcast address: no slave answers a read to it.
        ({"devices": [{"name": "m", "slave": 0, "registers": [{"name": "v", "address": 0}]}]},
         "device 'm': slave id 0 is the RTU broadcast address (no slave answers a read)"),
        ({"devices": [{"name": "m", "slave": 248, "registers": [{"name": "v", "address": 0}]}]},
         "device 'm': slave id 248 on a serial bus: use 1..247"),
        ({"port": None, "host": "sim",
          "devices": [{"name": "m", "slave": 255, "registers": [{"name": "v", "address": 0}]}]},
         "device 'm': slave id 255 with `host: sim`: use 1..247"),
        ({"bytesize": 7}, "bytesize"),
        ({"host": "10.0.0.2", "port": 502}, "`port` is the RTU serial device (e.g. "
         "/dev/ttyUSB0); the Modbus TCP port is `tcp_port`, with `host`"),
        # 125 registers at 2400 baud: 263 bytes of 10 bits, 1.10 s, over the default 1 s;
        # 111 registers: (13 + 222) x 10 / 2400 + 0.02 = 0.999 s.
        ({"baudrate": 2400,
          "devices": [{"name": "m", "slave": 1, "max_gap": 123, "registers": [
              {"name": "a", "table": "input", "address": 0},
              {"name": "b", "table": "input", "address": 124}]}]},
         "device 'm': its read of input 0+125 takes 1.10 s on the wire at 2400 baud, plus "
         "20 ms for the slave, more than `timeout: 1s`: raise `timeout` to 1.2s or set the "
         "device's `max_read: 111`"),
        ({"baudrate": 2400, "timeout": "200ms", "devices": [{"name": "m", "slave": 1, "registers": [
            {"name": "a", "table": "input", "address": 0, "type": "string", "length": 32}]}]},
         "takes 0.32 s on the wire at 2400 baud"),
    ],
)
def test_bad_config_is_refused_in_one_line_with_its_place(
    driver: dict[str, Any], expected: str
) -> None:
    message = refusal(driver)
    assert re.match(r"gw\.yaml:\d+:\d+: ", message), message
    assert expected in message, message


def test_ids_and_timeouts_a_serial_bus_refuses_are_fine_where_they_apply() -> None:
    # TCP devices may answer to unit 0 or 255; a fast line fits a 125-register read.
    tcp = {"port": None, "host": "10.0.0.2",
           "devices": [{"name": "m", "slave": 0, "registers": [{"name": "v", "address": 0}]}]}
    assert load_config_text(document(tcp), "gw.yaml").drivers
    fast = {"baudrate": 19200, "devices": [{"name": "m", "slave": 1, "max_gap": 123, "registers": [
        {"name": "a", "address": 0}, {"name": "b", "address": 124}]}]}
    assert load_config_text(document(fast), "gw.yaml").drivers


def test_a_good_config_loads_with_its_defaults() -> None:
    config = load_config_text(document({}), "gw.yaml")
    (driver,) = config.drivers
    assert isinstance(driver, ModbusConfig)
    assert (driver.timeout, driver.retries, driver.interval, driver.sim) == (1.0, 1, 10.0, None)
    (device,) = driver.devices
    assert (device.max_gap, device.max_read, device.registers[0].type) == (4, 125, "u16")
