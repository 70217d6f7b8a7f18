"""``tidegate devices``: on this machine as it is, and on folders that stand in for /dev.

A real pseudo-terminal behind a by-id style symlink plays a USB serial adapter; GPIO
chips are files named like /dev/gpiochipN, read through a stand-in for the third-party
``gpiod`` module where the test needs lines (this machine has no GPIO chip). The
1-Wire and I²C sections are in test_devices_buses.py.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from tidegate.cli.devices import devices
from tidegate.config.loader import load_config_text
from tidegate.ops.devices import DevicePaths, find_serial_ports, render_report, scan_devices


def run_cli(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    app.command("devices")(devices)
    app.command("unused")(lambda: None)  # two commands: typer keeps the `devices` name
    result = CliRunner().invoke(app, ["devices", *args])
    return result.exit_code, result.output


def test_this_machine_is_described_plainly_and_exits_0() -> None:
    code, text = run_cli()
    assert code == 0, text
    assert "Serial ports" in text and "GPIO chips" in text
    if not Path("/dev/serial/by-id").exists():
        assert "no USB serial adapter" in text
    if not list(Path("/dev").glob("gpiochip*")):
        assert "no GPIO chips: nothing matches /dev/gpiochip*" in text
    code, text = run_cli("--json")
    assert code == 0
    assert set(json.loads(text)) == {"serial_ports", "gpio_chips", "onewire", "i2c_buses", "notes"}


@pytest.fixture
def pty_path() -> Iterator[str]:
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_a_pty_behind_a_by_id_link_and_an_alias_is_listed(tmp_path: Path, pty_path: str) -> None:
    by_id = tmp_path / "serial" / "by-id"
    by_id.mkdir(parents=True)
    link = by_id / "usb-Acme_Weather_Station_A50285BI-if00-port0"
    link.symlink_to(pty_path)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "serial0").symlink_to(pty_path)
    paths = DevicePaths(dev=dev, serial_by_id=by_id)

    (port,) = [p for p in find_serial_ports(paths) if p.device == pty_path]
    assert port.by_id == (str(link),)
    assert port.aliases == (str(dev / "serial0"),)
    assert port.usb_id is None  # a pty has no USB descriptor in sysfs

    report = scan_devices(paths, import_gpiod=lambda: None)
    text = render_report(report)
    assert f"  {pty_path}  (no hardware details in sysfs)" in text
    assert f"      by-id: {link}" in text
    assert not any("no USB serial adapter" in note for note in report.notes)


def test_without_gpiod_the_chips_are_listed_with_how_to_get_their_lines(tmp_path: Path) -> None:
    for name in ("gpiochip0", "gpiochip4", "gpiochipx"):
        (tmp_path / name).touch()
    report = scan_devices(DevicePaths(dev=tmp_path, serial_by_id=tmp_path / "none"),
                          comports=list, import_gpiod=lambda: None)
    assert [chip.path for chip in report.gpio_chips] == [
        str(tmp_path / "gpiochip0"), str(tmp_path / "gpiochip4")
    ]
    assert any("pip install 'tidegate[gpio]'" in note for note in report.notes)
    assert "no USB serial adapter" in render_report(report)


# --- a stand-in for libgpiod v2's Python bindings (a third-party module) ----------------


@dataclass(frozen=True)
class ChipInfo:
    name: str
    label: str
    num_lines: int


@dataclass(frozen=True)
class LineInfo:
    offset: int
    name: str
    used: bool
    consumer: str


class Chip:
    denied = False

    def __init__(self, path: str) -> None:
        if Chip.denied:
            raise PermissionError(13, "Permission denied", path)
        self.path = path

    def __enter__(self) -> Chip:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def get_info(self) -> ChipInfo:
        return ChipInfo("gpiochip0", "pinctrl-bcm2711", 3)

    def get_line_info(self, offset: int) -> LineInfo:
        names = ["ID_SDA", "ID_SCL", "GPIO17"]
        used = offset == 2
        return LineInfo(offset, names[offset], used, "tidegate-door" if used else "")


def stand_in_gpiod() -> ModuleType:
    module = ModuleType("gpiod")
    module.__dict__["Chip"] = Chip
    return module


def test_gpio_lines_through_gpiod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gpiochip0").touch()
    paths = DevicePaths(dev=tmp_path, serial_by_id=tmp_path / "none")
    text = render_report(scan_devices(paths, comports=list, import_gpiod=stand_in_gpiod))
    assert f"  {tmp_path}/gpiochip0  pinctrl-bcm2711, 3 lines" in text
    assert "      0  ID_SDA\n" in text
    assert "      2  GPIO17  used by tidegate-door" in text

    monkeypatch.setattr(Chip, "denied", True)
    text = render_report(scan_devices(paths, comports=list, import_gpiod=stand_in_gpiod))
    assert "permission denied" in text and "`gpio` group" in text


# --- hardware/: the pin map is data, the wiring note's configs are configs ---------------

HARDWARE = Path(__file__).resolve().parents[2] / "hardware"


def pin_map() -> dict[str, Any]:
    data = yaml.safe_load((HARDWARE / "pinmaps" / "raspberry-pi.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_pin_map_covers_the_header_once() -> None:
    header = pin_map()["header"]
    assert [p["pin"] for p in header] == list(range(1, 41))
    gpios = sorted(p["gpio"] for p in header if "gpio" in p)
    assert gpios == list(range(28))  # GPIO 0..27, each on exactly one pin
    supplies = {p["pin"]: p["supply"] for p in header if "supply" in p}
    assert supplies == {
        1: "3V3", 17: "3V3", 2: "5V", 4: "5V",
        **{pin: "GND" for pin in (6, 9, 14, 20, 25, 30, 34, 39)},
    }
    assert {p["pin"]: p["gpio"] for p in header if p["pin"] in (8, 10, 11)} == {
        8: 14, 10: 15, 11: 17
    }


def test_each_board_names_a_chip_with_enough_lines() -> None:
    for board in pin_map()["boards"]:
        assert re.fullmatch(r"gpiochip\d+", board["chip"]), board
        assert board["lines"] >= 28, board  # the header's GPIO 0..27 are lines 0..27
        assert board["label"].startswith("pinctrl-"), board


def test_the_readable_table_matches_the_data() -> None:
    text = (HARDWARE / "pinmaps" / "raspberry-pi.md").read_text()
    rows = re.findall(r"^\| ([^|]+) \| (\d+) \| (\d+) \| ([^|]+) \|$", text, re.M)
    cells = {int(a): left.strip() for left, a, _, _ in rows}
    cells |= {int(b): right.strip() for _, _, b, right in rows}
    for pin in pin_map()["header"]:
        expected = pin.get("supply") or f"GPIO{pin['gpio']}"
        assert cells[pin["pin"]].split(" ")[0] == expected, pin


def test_the_wiring_notes_configs_load() -> None:
    text = (HARDWARE / "wiring.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 3
    drivers = "drivers:\n" + "".join(textwrap.indent(block, "  ") for block in blocks)
    config = load_config_text(drivers, "hardware/wiring.md")
    assert [(d.name, d.type) for d in config.drivers] == [
        ("weather", "serial"), ("door", "gpio"), ("water-meter", "gpio")
    ]


def test_the_udev_rules_are_well_formed() -> None:
    rule = re.compile(r'^[A-Z]+(\{[^}]+\})?\s*(==|!=|\+=|=)\s*"[^"]*"$')
    lines = (HARDWARE / "udev" / "99-tidegate.rules").read_text().splitlines()
    active = [line for line in lines if line.strip() and not line.startswith("#")]
    assert active, "the GPIO rule is active"
    templates = [line[2:] for line in lines if line.startswith("# SUBSYSTEM==")]
    for line in active + templates:
        for item in line.split(", "):
            assert rule.match(item.strip()), f"{item!r} in {line!r}"
