"""The reads that cover a device's register map: as few requests as the protocol allows.

Each request costs a round trip on a shared bus (at 9600 baud, ~10 ms of line time
plus the device's turnaround), so the registers of one device are merged into
reads. The rule:

- only registers of the same table and the same interval share a read (a register
  polled every minute is not read every 10 seconds with its neighbours);
- sorted by address, a register joins the current read when the unmapped gap
  between the end of the read and its start is at most ``max_gap`` registers (bits
  on coil and discrete tables), and the read stays within the limit: ``max_read``
  registers (125, the protocol's limit, unless the device allows fewer) or 2000 bits;
- registers that overlap (a bitfield over a u16, say) share the words they overlap.

Reading through a gap reads registers nobody asked for; some devices answer that
with "illegal data address", which is why ``max_gap`` is per device and can be 0.
Everything here is pure; the driver runs the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tidegate.drivers.modbus.registers import BIT_TABLES, RegisterSpec

MAX_READ_REGISTERS = 125
MAX_READ_BITS = 2000


@dataclass(frozen=True, slots=True)
class Read:
    """One request: ``count`` registers (or bits) of ``table`` from ``address``, and the
    registers whose values it carries."""

    table: str
    address: int
    count: int
    interval: float
    registers: tuple[RegisterSpec, ...]


def limit(table: str, max_read: int = MAX_READ_REGISTERS) -> int:
    """The most registers (or bits) one read of ``table`` may return."""
    return MAX_READ_BITS if table in BIT_TABLES else min(max_read, MAX_READ_REGISTERS)


def plan_reads(
    registers: Sequence[RegisterSpec],
    *,
    interval: float,
    max_gap: int = 4,
    max_read: int = MAX_READ_REGISTERS,
) -> list[Read]:
    """The reads that cover ``registers``, each register in exactly one read.

    ``interval`` is the device's, for registers without their own. Reads come out
    ordered by interval, table and address."""
    groups: dict[tuple[float, str], list[RegisterSpec]] = {}
    for register in registers:
        every = interval if register.interval is None else register.interval
        groups.setdefault((every, register.table), []).append(register)
    reads: list[Read] = []
    for (every, table), members in sorted(groups.items()):
        most = limit(table, max_read)
        members.sort(key=lambda r: (r.address, -r.words))
        start = end = -1
        current: list[RegisterSpec] = []
        for register in members:
            last = register.address + register.words  # one past the register
            fits = max(end, last) - start <= most
            if current and register.address - end <= max_gap and fits:
                current.append(register)
                end = max(end, last)
                continue
            if current:
                reads.append(Read(table, start, end - start, every, tuple(current)))
            start, end, current = register.address, last, [register]
        if current:
            reads.append(Read(table, start, end - start, every, tuple(current)))
    return reads
