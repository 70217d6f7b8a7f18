"""The text ``tidegate devices`` prints: a section per kind of device, then notes."""

from __future__ import annotations

from tidegate.ops.devices.gpio import GpioChip
from tidegate.ops.devices.i2c import I2cBus
from tidegate.ops.devices.onewire import OneWireSensor
from tidegate.ops.devices.ports import SerialPort
from tidegate.ops.devices.report import DeviceReport
from tidegate.wording import count


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


def render_report(report: DeviceReport) -> str:
    """The text ``tidegate devices`` prints."""
    out = ["Serial ports (use a by-id name in `port:`; it survives replugging):"]
    if report.serial_ports:
        for port in report.serial_ports:
            out += _describe_port(port)
    else:
        out.append("  none found")
    out.append("GPIO chips (`chip:` and `line:` of a gpio driver):")
    if report.gpio_chips:
        for chip in report.gpio_chips:
            out += _describe_chip(chip)
    else:
        out.append("  none found")
    out.append("1-Wire sensors (`id:` of a onewire driver's `sensors:`):")
    if report.onewire:
        for sensor in report.onewire:
            out += _describe_sensor(sensor)
    else:
        out.append("  none found")
    out.append("I²C buses (`bus:` and `address:` of an i2c driver):")
    if report.i2c_buses:
        for bus in report.i2c_buses:
            out += _describe_bus(bus)
    else:
        out.append("  none found")
    if report.notes:
        out.append("Notes:")
        out += [f"  - {note}" for note in report.notes]
    return "\n".join(out)
