"""``tidegate devices``' 1-Wire and I²C sections, on a fake sysfs tree and a fake /dev.

The 1-Wire tree is real files written like the kernel's (``W1Tree``), read through
the driver's own parser; I²C buses are files named like /dev/i2c-N, probed through
a simulated bus (the i2c driver's ``SimulatedBus``) or, for the real smbus2 path,
opened as they are.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from tidegate.drivers.i2c.sim_bus import SimChip, SimulatedBus
from tidegate.drivers.onewire.sim import W1Tree
from tidegate.drivers.onewire.sysfs import OVERLAY_HINT
from tidegate.ops.devices import (
    DevicePaths,
    find_i2c_buses,
    find_onewire,
    probe_bus,
    render_report,
    scan_devices,
)
from tidegate.ops.devices.i2c import ProbeBus

A, B = "28-0316a2795cff", "28-0316a27a11ff"


def paths_in(tmp_path: Path) -> DevicePaths:
    dev = tmp_path / "dev"
    dev.mkdir(exist_ok=True)
    return DevicePaths(dev=dev, serial_by_id=dev / "serial" / "by-id",
                       w1_devices=tmp_path / "sys" / "bus" / "w1" / "devices")


# --- 1-Wire ------------------------------------------------------------------------------


def test_one_wire_sensors_are_listed_with_a_reading_or_why_not(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    tree = W1Tree(paths.w1_devices)
    tree.write(A, 23.125)
    tree.crc_error(B)
    tree.write_text("2d-00000a1b2c3d", "")
    tree.write(B.replace("28-", "3b-"), -10.125)

    sensors, notes = find_onewire(paths)
    assert notes == []
    assert [(s.id, s.family, s.celsius) for s in sensors] == [
        (A, "DS18B20", 23.125),
        (B, "DS18B20", None),
        ("2d-00000a1b2c3d", "family 0x2d", None),
        ("3b-0316a27a11ff", "DS1825", -10.125),
    ]
    text = render_report(scan_devices(paths, comports=list, import_gpiod=lambda: None,
                                      i2c_opener=unopenable))
    assert "1-Wire sensors (`id:` of a onewire driver's `sensors:`):" in text
    assert f"  {A}  DS18B20   23.125 °C" in text
    assert f"  {B}  DS18B20   reading rejected: CRC check failed (crc=" in text
    assert "  2d-00000a1b2c3d  family 0x2d  not a temperature sensor" in text
    assert "w1-gpio" not in text  # the bus is there: no hint


def test_the_listing_judges_a_reading_by_its_family_like_the_driver(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    tree = W1Tree(paths.w1_devices)
    tree.write(A, 85.0)  # a real 85 °C (byte 6 is 0x10): no power-on value
    tree.power_on(B)
    tree.write("3b-0000001a2b3c", 300.0)  # a MAX31850 shares the DS1825's family
    readings = {s.id: (s.celsius, s.problem) for s in find_onewire(paths)[0]}
    assert readings[A] == (85.0, None)
    assert readings["3b-0000001a2b3c"] == (300.0, None)
    celsius, problem = readings[B]
    assert celsius is None and problem is not None and "no conversion ran" in problem


def test_a_sensor_gone_between_listing_and_reading_is_not_readable(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    W1Tree(paths.w1_devices).folder(A).mkdir()  # a folder without w1_slave
    (sensor,) = find_onewire(paths)[0]
    assert sensor.problem == "not readable: No such file or directory"


def test_without_a_one_wire_bus_one_line_says_how_to_enable_it(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    assert find_onewire(paths) == ([], [
        f"no 1-Wire bus ({paths.w1_devices} is missing): add `dtoverlay=w1-gpio,gpiopin=4` "
        "(Pi 5: `w1-gpio-pi5`) to /boot/firmware/config.txt and reboot "
        "(wiring: hardware/onewire-i2c.md)"
    ])
    # The very hint the driver gives: one text, so the two cannot drift apart.
    assert find_onewire(paths)[1][0].endswith(OVERLAY_HINT)
    W1Tree(paths.w1_devices)  # the master is there, no sensor answers
    sensors, (note,) = find_onewire(paths)
    assert sensors == [] and "no sensor" in note and "pull-up" in note


# --- I²C ---------------------------------------------------------------------------------


def unopenable(number: int) -> ProbeBus:
    raise PermissionError(errno.EACCES, "Permission denied", f"/dev/i2c-{number}")


class KernelHeld:
    """A bus where a kernel driver holds 0x1a (EBUSY, i2cdetect's UU) and 0x50 answers."""

    def __init__(self) -> None:
        self.closed = False

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        if i2c_addr == 0x1A:
            raise OSError(errno.EBUSY, "Device or resource busy")
        if i2c_addr == 0x50:
            return 0
        raise OSError(errno.ENXIO, "No such device or address")

    def close(self) -> None:
        self.closed = True


def test_i2c_addresses_that_answer_are_named_by_the_chip_usually_there(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    for name in ("i2c-1", "i2c-20", "i2c-3", "i2c-x"):
        (paths.dev / name).touch()
    opened: list[SimulatedBus | KernelHeld] = []

    def opener(number: int) -> ProbeBus:
        if number == 1:
            gone = SimChip()
            gone.unplug()
            opened.append(SimulatedBus(
                chips={0x76: SimChip(), 0x44: SimChip(), 0x3C: SimChip(), 0x48: gone}))
        elif number == 20:
            opened.append(KernelHeld())
        else:
            return unopenable(number)
        return opened[-1]

    found, notes = find_i2c_buses(paths, opener)
    assert notes == []
    assert [(b.number, b.answered, b.busy) for b in found] == [
        (1, (0x3C, 0x44, 0x76), ()), (3, (), ()), (20, (0x50,), (0x1A,))
    ]
    sim, held = opened
    assert sim.closed and held.closed
    assert isinstance(sim, SimulatedBus)
    assert sim.transactions == 0x77 - 0x03 + 1  # 0x03..0x77, nothing reserved probed
    text = render_report(scan_devices(paths, comports=list, import_gpiod=lambda: None,
                                      i2c_opener=opener))
    assert f"  {paths.dev}/i2c-1  (bus 1): 3 answering" in text
    assert "    0x3c  unknown chip\n" in text
    assert "    0x44  SHT3x or SHT4x (temperature, humidity)\n" in text
    assert "    0x76  BME280/BMP280 (temperature, humidity, pressure)\n" in text
    assert f"  {paths.dev}/i2c-3: permission denied: add user " in text
    assert "to the `i2c` group (`sudo usermod -aG i2c " in text
    assert "    0x1a  busy: a kernel driver holds it" in text
    as_json = json.loads(json.dumps(asdict(found[0])))
    assert as_json["answered"] == [0x3C, 0x44, 0x76]


def test_probing_skips_the_reserved_addresses() -> None:
    class Everyone:
        def __init__(self) -> None:
            self.asked: list[int] = []

        def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
            self.asked.append(i2c_addr)
            return 0

        def close(self) -> None:
            pass

    bus = Everyone()
    answered, busy = probe_bus(bus)
    assert bus.asked == answered == list(range(0x03, 0x78)) and busy == []


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_smbus2_on_a_node_that_is_no_adapter_says_so_and_closes_it(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    (paths.dev / "i2c-1").touch()  # smbus2 opens it; its I2C_FUNCS ioctl fails
    before = open_descriptors()
    for _ in range(5):
        (bus,) = find_i2c_buses(paths)[0]
        assert bus.problem == "is not an I²C adapter (`tidegate devices` lists the buses)"
    assert open_descriptors() == before  # the driver's opener: no descriptor left behind
    if os.geteuid() != 0:  # root opens anything
        (paths.dev / "i2c-1").chmod(0)
        (bus,) = find_i2c_buses(paths)[0]
        assert bus.problem is not None and bus.problem.startswith("permission denied")
    if os.geteuid() != 0:  # root opens anything
        (paths.dev / "i2c-1").chmod(0)
        (bus,) = find_i2c_buses(paths)[0]
        assert bus.problem is not None and bus.problem.startswith("permission denied")


class Stuck:
    """SDA held low: every transfer times out (i2c-bcm2835: ETIMEDOUT)."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        self.asked.append(i2c_addr)
        raise OSError(errno.ETIMEDOUT, "Connection timed out")

    def close(self) -> None:
        pass


def test_a_stuck_bus_is_reported_as_stuck_not_as_empty(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    (paths.dev / "i2c-1").touch()
    stuck = Stuck()
    (bus,) = find_i2c_buses(paths, lambda number: stuck)[0]
    assert bus.problem == (
        "Connection timed out at 0x05: the bus is stuck: SDA or SCL held low? check the "
        "wiring and pull-ups, power-cycle the chips"
    )
    assert stuck.asked == [0x03, 0x04, 0x05]  # stopped, not one timeout per address


def test_a_unit_that_does_not_allow_i2c_is_told_apart_from_a_missing_group(
    tmp_path: Path,
) -> None:
    paths = paths_in(tmp_path)
    (paths.dev / "i2c-1").touch()

    def denied_by_systemd(number: int) -> ProbeBus:
        # DevicePolicy=closed: the device cgroup refuses with EPERM, not EACCES.
        raise PermissionError(errno.EPERM, "Operation not permitted", f"/dev/i2c-{number}")

    (bus,) = find_i2c_buses(paths, denied_by_systemd)[0]
    assert bus.problem == (
        "not permitted: the systemd unit's DevicePolicy does not allow it: the unit needs "
        "`DeviceAllow=char-i2c rw` (`sudo tidegate service install` writes it; "
        "hardware/onewire-i2c.md)"
    )


def test_without_an_i2c_bus_one_line_says_how_to_enable_it(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    assert find_i2c_buses(paths, unopenable) == ([], [
        f"no I²C bus: nothing matches {paths.dev}/i2c-*: enable I²C: `sudo raspi-config "
        "nonint do_i2c 0` (or `dtparam=i2c_arm=on` in /boot/firmware/config.txt and `i2c-dev` "
        "in /etc/modules-load.d/i2c.conf), then reboot (hardware/onewire-i2c.md)"
    ])


@pytest.mark.parametrize("section", ["1-Wire sensors", "I²C buses"])
def test_empty_sections_say_none_found(tmp_path: Path, section: str) -> None:
    text = render_report(scan_devices(paths_in(tmp_path), comports=list,
                                      import_gpiod=lambda: None))
    assert f"{section} (" in text
    assert text.split(section, 1)[1].splitlines()[1] == "  none found"
