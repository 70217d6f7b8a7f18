"""The modbus driver's checks that span keys: distinct devices on a bus, slave ids a
serial bus can have, and an RTU ``timeout`` long enough for the largest planned read.
Each returns (or adds) its problem for ``ModbusConfig``'s validator to report at the
key at fault (``tidegate.config.located_errors``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tidegate.config.located_errors import ProblemList
from tidegate.drivers.modbus.plan import plan_reads
from tidegate.drivers.modbus.registers import BIT_TABLES

if TYPE_CHECKING:  # config imports this module
    from tidegate.drivers.modbus.config import ModbusConfig, ModbusDevice


def distinct_devices(devices: list[ModbusDevice], problems: ProblemList) -> None:
    """Each device's name and slave id once on a bus, reported at the second use."""
    names: dict[str, int] = {}
    slaves: dict[int, int] = {}
    for index, device in enumerate(devices):
        first = names.setdefault(device.name, index)
        if first != index:
            problems.add(
                f"two devices are named {device.name!r} (devices[{first}] too)",
                "devices", index, "name",
            )
        first = slaves.setdefault(device.slave, index)
        if first != index:
            problems.add(
                f"device {device.name!r}: slave id {device.slave} is taken by "
                f"{devices[first].name!r} (devices[{first}]); one bus, one device per id",
                "devices", index, "slave",
            )


def serial_slave_id(device: ModbusDevice, *, rtu: bool) -> str | None:
    """Why no serial slave (nor the TCP simulation) can have the device's slave id."""
    if 1 <= device.slave <= 247:
        return None
    if device.slave == 0 and rtu:
        return (
            f"device {device.name!r}: slave id 0 is the RTU broadcast address (no slave "
            "answers a read); give its own id, 1..247"
        )
    where = "on a serial bus" if rtu else "with `host: sim`"
    return f"device {device.name!r}: slave id {device.slave} {where}: use 1..247"


REPLY_MARGIN = 0.02
"""Seconds a slave is given, on top of the wire time, to turn a request around."""


def wire_seconds(config: ModbusConfig, table: str, count: int) -> float:
    """The time a read of ``count`` registers (bits) and its answer take on the RTU line:
    an 8-byte request; an answer of id, function, byte count, data and CRC."""
    data = (count + 7) // 8 if table in BIT_TABLES else 2 * count
    return (8 + 5 + data) * config.char_bits / config.baudrate


_TABLE_WORDS = {
    "holding": "holding registers",
    "input": "input registers",
    "coil": "coils",
    "discrete": "discrete inputs",
}


def fits_timeout(config: ModbusConfig, device: ModbusDevice) -> str | None:
    """Why an RTU plan's largest read cannot arrive within ``timeout`` (pymodbus would
    time out before the answer's last byte, at every poll), with the ``timeout`` or
    ``max_read`` that fits."""
    reads = plan_reads(
        device.registers,
        interval=config.device_interval(device),
        max_gap=device.max_gap,
        max_read=device.max_read,
    )
    worst = max(reads, key=lambda r: wire_seconds(config, r.table, r.count))
    needed = wire_seconds(config, worst.table, worst.count) + REPLY_MARGIN
    if needed <= config.timeout:
        return None
    hint = f"raise `timeout` to {math.ceil(needed * 10) / 10:g}s"
    if worst.table not in BIT_TABLES:
        fits = max(
            (n for n in range(1, worst.count) if
             wire_seconds(config, worst.table, n) + REPLY_MARGIN <= config.timeout),
            default=0,
        )
        # Whole values a read: registers all of one size (f32s) suggest a multiple of it.
        sizes = {r.words for r in device.registers if r.table not in BIT_TABLES}
        if len(sizes) == 1:
            fits -= fits % sizes.pop()
        if fits >= max(r.words for r in device.registers):
            hint += f" or set the device's `max_read: {fits}`"
    unit = "bits" if worst.table in BIT_TABLES else "registers"
    last = worst.address + worst.count - 1
    return (
        f"device {device.name!r}: its read of {_TABLE_WORDS[worst.table]} "
        f"{worst.address}\u2013{last} ({worst.count} {unit}) takes "
        f"{wire_seconds(config, worst.table, worst.count):.2f} s on the wire at "
        f"{config.baudrate} baud, plus {REPLY_MARGIN * 1000:g} ms for the slave, more than "
        f"`timeout: {config.timeout:g}s`: {hint}"
    )
