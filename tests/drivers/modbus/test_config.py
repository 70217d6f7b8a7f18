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
         "device 'b': slave id 1 is taken by 'a' (devices[0]); one bus, one device per id"),
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
         "device 'm': its read of input registers 0\u2013124 (125 registers) takes 1.10 s on "
         "the wire at 2400 baud, plus "
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


METER = """\
drivers:
  - name: mains
    type: modbus
    port: /dev/ttyUSB0
    baudrate: 2400
    timeout: 100ms
    devices:
      - name: sdm120
        slave: 0
        registers:
          - {name: voltage, table: input, address: 0x0000, type: f32}
          - {name: current, table: input, address: 0x0006, type: f32}
          - {name: power, table: input, address: 0x000C, type: f32}
      - name: sdm120
        slave: 2
        registers:
          - {name: voltage, table: input, address: 0, type: f32}
      - name: boiler
        slave: 2
        registers:
          - {name: t, address: 0}
"""


def test_cross_key_mistakes_are_each_reported_at_their_own_key() -> None:
    """Not at the driver's `- name:` line, and the first does not hide the others."""
    with pytest.raises(ConfigError) as caught:
        load_config_text(METER, "m.yaml")
    assert caught.value.messages == [
        # 14 registers (0-13) of 10 bits a byte: (13 + 28) x 10 / 2400 = 0.17 s; every
        # register is an f32, so the max_read that fits is a whole number of them.
        "m.yaml:6:14: drivers[0].timeout: device 'sdm120': its read of input registers "
        "0\u201313 (14 registers) takes 0.17 s on the wire at 2400 baud, plus 20 ms for the "
        "slave, more than `timeout: 0.1s`: raise `timeout` to 0.2s or set the device's "
        "`max_read: 2`",
        "m.yaml:9:16: drivers[0].devices[0].slave: device 'sdm120': slave id 0 is the RTU "
        "broadcast address (no slave answers a read); give its own id, 1..247",
        "m.yaml:14:15: drivers[0].devices[1].name: two devices are named 'sdm120' "
        "(devices[0] too)",
        "m.yaml:19:16: drivers[0].devices[2].slave: device 'boiler': slave id 2 is taken by "
        "'sdm120' (devices[1]); one bus, one device per id",
    ]


def test_a_timeout_left_at_its_default_is_named_at_its_driver() -> None:
    text = (
        "drivers:\n  - name: slow\n    type: modbus\n    port: /dev/ttyUSB0\n"
        "    baudrate: 1200\n    devices:\n      - name: m\n        slave: 1\n"
        "        max_gap: 100\n        registers:\n"
        "          - {name: a, table: input, address: 0}\n"
        "          - {name: b, table: input, address: 60}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "m.yaml")
    # No `timeout:` line to point at: the driver's, with the key it is about named.
    # max_read 52: (13 + 2 x 52) x 10 / 1200 + 0.02 = 0.995 s.
    assert caught.value.messages == [
        "m.yaml:2:5: drivers[0].timeout: device 'm': its read of input registers 0\u201360 "
        "(61 registers) takes 1.12 s on the wire at 1200 baud, plus 20 ms for the slave, "
        "more than `timeout: 1s`: raise `timeout` to 1.2s or set the device's `max_read: 52`"
    ]


def test_two_registers_of_one_name_are_reported_at_the_second() -> None:
    text = METER.replace("timeout: 100ms", "timeout: 1s").replace("slave: 0", "slave: 1")
    text = text.replace("name: sdm120\n        slave: 2", "name: other\n        slave: 4")
    text = text.replace("{name: power,", "{name: current,")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "m.yaml")
    assert caught.value.messages == [
        "m.yaml:13:13: drivers[0].devices[0].registers[2]: device 'sdm120': two registers or "
        "bits are named 'current'",
    ]


@pytest.mark.parametrize(
    ("fields", "key", "value", "message"),
    [
        ("scale: 0", "scale", "0", "`scale: 0` would make every reading the same"),
        ("type: string", "type", "string",
         "a string needs `length` (registers, 2 characters each)"),
        ("type: bitfield, bits: {alarm: 16}", "bits.alarm", "16",
         "bit 'alarm' is not within 0..15"),
        ("type: u32, length: 2", "length", "2", "`length` is for string and bitfield only"),
    ],
)
def test_a_register_that_contradicts_itself_is_refused_at_the_key(
    fields: str, key: str, value: str, message: str
) -> None:
    line = "          - {name: v, address: 0, " + fields + "}\n"
    text = METER.partition("          - {name: voltage")[0] + line
    text = text.replace("slave: 0", "slave: 1").replace("timeout: 100ms", "timeout: 1s")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "m.yaml")
    column = line.rindex(f" {value}") + 2  # the value of the key at fault
    assert caught.value.messages == [
        f"m.yaml:11:{column}: drivers[0].devices[0].registers[0].{key}: register 'v': {message}"
    ]


def test_the_timeout_description_gives_the_byte_times_the_check_uses() -> None:
    description = ModbusConfig.model_fields["timeout"].description or ""
    plain = ModbusConfig.model_validate({**yaml.safe_load(document({}))["drivers"][0],
                                         "baudrate": 2400})
    parity = plain.model_copy(update={"parity": "even"})
    # 10 bits a byte on 8N1, 11 with a parity bit (or a second stop bit).
    assert f"{1000 * plain.char_bits / 2400:.1f} ms a byte at 2400 baud 8N1" in description
    assert f"{1000 * parity.char_bits / 2400:.1f} ms with parity or two stop bits" in description
