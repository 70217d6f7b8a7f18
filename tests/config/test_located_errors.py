"""Where `tidegate check` puts a problem that spans keys, and what it says about a
key in the wrong section or a type by another name (through the real loader)."""

from __future__ import annotations

import pytest

from tidegate.config.loader import load_config_text
from tidegate.errors import ConfigError

MODBUS = """\
drivers:
  - name: mains
    type: modbus
    port: /dev/ttyUSB0
    devices:
      - name: meter
        slave: 1
        registers:
          - {name: voltage, table: input, address: 0, type: f32}
"""

I2C = """\
  - name: env
    type: i2c
    bus: sim
    devices:
      - {name: garden, chip: bme280, address: 0x76}
      - {name: shed, chip: bme280, address: 0x76}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gw.yaml")
    return caught.value.messages


def test_every_drivers_cross_key_problem_is_reported_at_once_in_file_order() -> None:
    text = MODBUS.replace("slave: 1", "slave: 0") + I2C
    assert problems(text) == [
        "gw.yaml:7:16: drivers[0].devices[0].slave: device 'meter': slave id 0 is the RTU "
        "broadcast address (no slave answers a read); give its own id, 1..247",
        "gw.yaml:15:45: drivers[1].devices[1].address: 'garden' and 'shed' both use "
        "address 0x76",
    ]


def test_a_key_of_the_section_below_says_where_it_belongs() -> None:
    """`registers:` dedented to the driver: not "did you mean 'retries'"."""
    text = MODBUS.replace("        registers:\n", "    registers:\n").replace(
        "          - {name: voltage", "      - {name: voltage"
    )
    assert (
        "gw.yaml:8:5: drivers[0].registers: unknown key 'registers' here: it belongs in an "
        "item of `devices:` (indented under it)"
    ) in problems(text)


def test_a_key_of_a_single_subsection_names_it() -> None:
    text = MODBUS + "    seed: 5\n"
    assert problems(text) == [
        "gw.yaml:10:5: drivers[0].seed: unknown key 'seed' here: it belongs under `sim:`"
    ]


def test_a_misspelling_still_gets_its_look_alike() -> None:
    text = MODBUS + "    retrys: 2\n"
    assert problems(text) == [
        "gw.yaml:10:5: drivers[0].retrys: unknown key 'retrys' (did you mean 'retries'?)"
    ]


@pytest.mark.parametrize(("written", "meant"), [("float", "f32"), ("double", "f64"),
                                                ("UINT16", "u16")])
def test_a_type_by_another_name_suggests_ours(written: str, meant: str) -> None:
    (message,) = problems(MODBUS.replace("type: f32", f"type: {written}"))
    assert message.startswith("gw.yaml:9:61: drivers[0].devices[0].registers[0].type: "), message
    assert message.endswith(f", got '{written}' (did you mean '{meant}'?)"), message
