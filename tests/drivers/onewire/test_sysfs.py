"""What a ``w1_slave`` file says: real kernel output, each kind of bad reading, and
the simulator's files checked against the same samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidegate.drivers.onewire.sim import crc8, damaged, scratchpad, w1_slave_text
from tidegate.drivers.onewire.sysfs import (
    Reading,
    Rejected,
    family_name,
    family_of,
    list_sensors,
    parse_w1_slave,
)

# Output of the kernel's w1_therm module on a Raspberry Pi (the CRC bytes check out:
# see test_the_simulator_prints_what_the_kernel_prints).
GOOD = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
POWER_ON = "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n"
NO_SENSOR = "ff ff ff ff ff ff ff ff ff : crc=c9 NO\nff ff ff ff ff ff ff ff ff t=-62\n"
STUCK_LOW = "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n"
NEGATIVE = "5e ff 4b 46 7f ff 02 10 b6 : crc=b6 YES\n5e ff 4b 46 7f ff 02 10 b6 t=-10125\n"


def test_a_good_reading_is_the_kernels_millidegrees() -> None:
    assert parse_w1_slave(GOOD) == Reading(23125)
    assert parse_w1_slave(NEGATIVE) == Reading(-10125)
    assert Reading(23125).celsius == 23.125


@pytest.mark.parametrize(
    ("text", "counter", "words"),
    [
        (NO_SENSOR, "crc_error", "crc=c9 NO"),
        (POWER_ON, "power_on_85", "accept_85: true"),
        (STUCK_LOW, "stuck_low", "stuck low"),
        (w1_slave_text(scratchpad(-127)), "out_of_range", "t=-127000"),
        ("", "read_failed", "empty w1_slave"),
        ("\n", "read_failed", "no valid reading"),
        (GOOD.splitlines()[0] + "\n", "malformed", "got 1"),
        (GOOD.replace("t=23125", "t=23.125"), "malformed", "`… t=N`"),
        (GOOD.replace("YES", "MAYBE"), "malformed", "YES|NO"),
        (GOOD.replace("0e 10 57 t", "0f 10 57 t"), "malformed", "differ"),
    ],
)
def test_each_bad_reading_is_rejected_with_its_counter(
    text: str, counter: str, words: str
) -> None:
    rejected = parse_w1_slave(text)
    assert isinstance(rejected, Rejected)
    assert rejected.counter == counter
    assert words in rejected.reason and "\n" not in rejected.reason


def test_85_passes_only_when_accepted() -> None:
    assert parse_w1_slave(POWER_ON, accept_85=True) == Reading(85000)
    # accept_85 lets the power-on value through, nothing else.
    assert isinstance(parse_w1_slave(NO_SENSOR, accept_85=True), Rejected)
    assert parse_w1_slave(w1_slave_text(scratchpad(84.9375))) == Reading(84937)


# A DS18B20 that really measured 85.000 °C: byte 6 is 0x10 - (t & 0x0f) = 0x10.
REAL_85 = "50 05 4b 46 7f ff 10 10 bd : crc=bd YES\n50 05 4b 46 7f ff 10 10 bd t=85000\n"
# A DS18S20 (family 10) at 85.000 °C: aa 00 and COUNT_REMAIN 0x0c, whether it has
# converted or not (the kernel: 85000 - 250 + 1000 * (16 - 12) / 16).
DS18S20_85 = "aa 00 4b 46 ff ff 0c 10 87 : crc=87 YES\naa 00 4b 46 ff ff 0c 10 87 t=85000\n"
# The kernel's other no-conversion signature: 0x07ff (127.937 °C) with byte 6 at 0x0c.
STARVED = "ff 07 4b 46 7f ff 0c 10 a6 : crc=a6 YES\nff 07 4b 46 7f ff 0c 10 a6 t=127937\n"


def test_a_real_85_is_told_from_the_power_on_value_by_byte_6() -> None:
    assert w1_slave_text(scratchpad(85.0)) == REAL_85
    for family in ("28", "22", "3b", "42", None):
        assert parse_w1_slave(REAL_85, family=family) == Reading(85000)
        rejected = parse_w1_slave(POWER_ON, family=family)
        assert isinstance(rejected, Rejected) and rejected.counter == "power_on_85"
        assert "byte 6 at 0x0c" in rejected.reason
    # A DS18S20 cannot be told apart: only accept_85 lets its 85 through.
    rejected = parse_w1_slave(DS18S20_85, family="10")
    assert isinstance(rejected, Rejected) and rejected.counter == "power_on_85"
    assert "accept_85: true" in rejected.reason
    assert parse_w1_slave(DS18S20_85, family="10", accept_85=True) == Reading(85000)


def test_the_kernels_not_enough_power_signature_is_rejected_even_in_range() -> None:
    # In the range of family 3b (MAX31850), so only byte 6 gives it away.
    rejected = parse_w1_slave(STARVED, family="3b")
    assert isinstance(rejected, Rejected) and rejected.counter == "power_on_85"
    assert rejected.reason.startswith("t=127937 with scratchpad byte 6 at 0x0c")


def test_family_3b_reads_up_to_the_max31850s_range_and_a_sensor_range_overrides() -> None:
    hot = w1_slave_text(scratchpad(300.0))  # the kernel's t= for a MAX31850 at 300 °C
    assert parse_w1_slave(hot, family="3b") == Reading(300000)
    assert parse_w1_slave(hot, family="28") == Rejected(
        "out_of_range", "t=300000 is outside the sensor's -55..125 °C range"
    )
    assert parse_w1_slave(hot, family="3b", limits=(-270_000, 250_000)) == Rejected(
        "out_of_range", "t=300000 is outside the sensor's -270..250 °C range"
    )
    assert parse_w1_slave(GOOD.replace("t=23125", "t=4095")) == Reading(4095)  # 4.095 °C


def test_a_failed_crc_shows_the_last_good_scratchpad_on_line_2_as_the_kernel_does() -> None:
    bad = damaged(scratchpad(21.0))
    text = w1_slave_text(bad, last_good=scratchpad(20.0))
    first, second = text.splitlines()
    assert first.startswith(" ".join(f"{b:02x}" for b in bad)) and first.endswith("NO")
    assert second.startswith(" ".join(f"{b:02x}" for b in scratchpad(20.0)))
    assert parse_w1_slave(text) == Rejected("crc_error", "CRC check failed (crc=5c NO)")


def test_the_simulator_prints_what_the_kernel_prints() -> None:
    assert crc8(bytes.fromhex("72014b467fff0e10")) == 0x57
    assert crc8(b"\xff" * 8) == 0xC9
    assert w1_slave_text(scratchpad(23.125)) == GOOD
    assert w1_slave_text(scratchpad(-10.125)) == NEGATIVE
    # No sensor answering: line 1 matches the often-quoted output; line 2 is the
    # scratchpad the kernel kept, zeros while no read has passed its CRC.
    no_answer = w1_slave_text(b"\xff" * 9)
    assert no_answer.splitlines()[0] == NO_SENSOR.splitlines()[0]
    assert no_answer.splitlines()[1] == "00 " * 9 + "t=-62"
    assert w1_slave_text(bytes(9)) == STUCK_LOW
    assert "crc=" in w1_slave_text(damaged(scratchpad(21))) and "NO\n" in w1_slave_text(
        damaged(scratchpad(21))
    )


def test_families_and_folder_names() -> None:
    assert family_of("28-0316a2795cff") == "28"
    assert family_of("w1_bus_master1") is None
    assert family_of("28-0316A2795CFF") is None  # the kernel writes lower case
    assert family_name("3b-0000001a2b3c") == "DS1825"
    assert family_name("2d-00000a1b2c3d") == "family 0x2d"


def test_listing_keeps_only_slave_folders(tmp_path: Path) -> None:
    for name in ("28-0316a2795cff", "w1_bus_master1", "2d-00000a1b2c3d", "notes"):
        (tmp_path / name).mkdir()
    assert list_sensors(tmp_path) == ["28-0316a2795cff", "2d-00000a1b2c3d"]
    with pytest.raises(FileNotFoundError):
        list_sensors(tmp_path / "absent")
