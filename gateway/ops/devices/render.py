"""The text ``tidegate devices`` prints: a section per kind of device, then notes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from tidegate.ops.devices.gpio import GpioChip
from tidegate.ops.devices.i2c import I2cBus
from tidegate.ops.devices.onewire import OneWireSensor
from tidegate.ops.devices.ports import SerialPort
from tidegate.ops.devices.report import DeviceReport
from tidegate.wording import count

T = TypeVar("T")


def _describe_port(port: SerialPort) -> list[str]:
    facts = [
        fact
        for fact in (
            port.description,
            port.manufacturer,
            f"USB {port.usb_id}" if port.usb_id else None,
            f"serial number {port.serial_number}" if port.serial_number else None,
        )
        if fact
    ]
    head = f"  {port.device}"
    head += "  " + ", ".join(facts) if facts else "  (no hardware details in sysfs)"
    lines = [head]
    lines += [f"      by-id: {name}" for name in port.by_id]
    lines += [f"      alias: {name}" for name in port.aliases]
    return lines


def _describe_chip(chip: GpioChip) -> list[str]:
    if chip.problem is not None:
        return [f"  {chip.path}: {chip.problem}"]
    lines = [f"  {chip.path}  {chip.label or chip.name}, {count(len(chip.lines), 'line')}"]
    for line in chip.lines:
        use = f"  used by {line.consumer or 'the kernel'}" if line.used else ""
        lines.append(f"    {line.offset:>3}  {line.name or '-'}{use}")
    return lines


def _describe_sensor(sensor: OneWireSensor) -> list[str]:
    reading = f"{sensor.celsius:.3f} °C" if sensor.celsius is not None else sensor.problem
    return [f"  {sensor.id}  {sensor.family:<8}  {reading or 'no reading'}"]


def _describe_bus(bus: I2cBus) -> list[str]:
    if bus.problem is not None:
        return [f"  {bus.path}: {bus.problem}"]
    if not bus.answered and not bus.busy:
        return [f"  {bus.path}  (bus {bus.number}): no address answers"]
    lines = [f"  {bus.path}  (bus {bus.number}): {len(bus.answered)} answering"]
    for address in bus.answered:
        lines.append(f"    0x{address:02x}  {bus.known.get(address, 'unknown chip')}")
    for address in bus.busy:
        lines.append(f"    0x{address:02x}  busy: a kernel driver holds it")
    return lines


def _section(header: str, items: Sequence[T], describe: Callable[[T], list[str]]) -> list[str]:
    """A header, then each item's lines, or `none found`."""
    lines = [header]
    for item in items:
        lines += describe(item)
    return lines if items else [*lines, "  none found"]


def render_report(report: DeviceReport) -> str:
    """The text ``tidegate devices`` prints."""
    out = [
        *_section(
            "Serial ports (use a by-id name in `port:`; it survives replugging):",
            report.serial_ports,
            _describe_port,
        ),
        *_section(
            "GPIO chips (`chip:` and `line:` of a gpio driver):", report.gpio_chips, _describe_chip
        ),
        *_section(
            "1-Wire sensors (`id:` of a onewire driver's `sensors:`):",
            report.onewire,
            _describe_sensor,
        ),
        *_section(
            "I²C buses (`bus:` and `address:` of an i2c driver):", report.i2c_buses, _describe_bus
        ),
    ]
    if report.notes:
        out.append("Notes:")
        out += [f"  - {note}" for note in report.notes]
    return "\n".join(out)
