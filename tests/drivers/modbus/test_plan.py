"""Merging a register map into reads: examples, and the rule's invariants as properties."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tidegate.drivers.modbus.plan import MAX_READ_BITS, MAX_READ_REGISTERS, Read, plan_reads
from tidegate.drivers.modbus.registers import RegisterSpec


def reg(name: str, address: int, type_: str | None = None, **more: Any) -> RegisterSpec:
    typed = {} if type_ is None else {"type": type_}
    return RegisterSpec.model_validate({"name": name, "address": address, **typed, **more})


def spans(reads: list[Read]) -> list[tuple[str, int, int, float]]:
    return [(r.table, r.address, r.count, r.interval) for r in reads]


def test_adjacent_registers_become_one_read() -> None:
    # An SDM120's voltage, current and power: f32s at 0, 6 and 12 (gaps of 4 registers).
    registers = [reg("v", 0, "f32", table="input"), reg("i", 6, "f32", table="input"),
                 reg("p", 12, "f32", table="input")]
    assert spans(plan_reads(registers, interval=10, max_gap=4)) == [("input", 0, 14, 10)]
    assert spans(plan_reads(registers, interval=10, max_gap=3)) == [
        ("input", 0, 2, 10), ("input", 6, 2, 10), ("input", 12, 2, 10)
    ]


def test_tables_and_intervals_are_read_apart() -> None:
    registers = [reg("a", 0), reg("b", 1, table="input"), reg("c", 2, interval=60),
                 reg("d", 0, table="coil"), reg("e", 5, table="coil")]
    assert spans(plan_reads(registers, interval=10, max_gap=4)) == [
        ("coil", 0, 6, 10), ("holding", 0, 1, 10), ("input", 1, 1, 10), ("holding", 2, 1, 60)
    ]


def test_a_read_stops_at_the_limit() -> None:
    registers = [reg(f"r{n}", n) for n in range(130)]
    reads = plan_reads(registers, interval=1, max_gap=0)
    assert spans(reads) == [("holding", 0, 125, 1), ("holding", 125, 5, 1)]
    assert spans(plan_reads(registers, interval=1, max_read=60)) == [
        ("holding", 0, 60, 1), ("holding", 60, 60, 1), ("holding", 120, 10, 1)
    ]


def test_overlapping_registers_share_their_words() -> None:
    registers = [reg("word", 7), reg("flags", 7, "bitfield", bits={"on": 0}), reg("pair", 6, "u32")]
    (read,) = plan_reads(registers, interval=1)
    assert (read.address, read.count) == (6, 2)
    assert sorted(r.name for r in read.registers) == ["flags", "pair", "word"]
    assert [r.address - read.address for r in registers] == [1, 1, 0]  # offsets in the read


# --- properties ------------------------------------------------------------------------

KINDS = {"u16": 1, "u32": 2, "f32": 2, "u64": 4, "f64": 4, "string": 5}


@st.composite
def register_maps(draw: st.DrawFn) -> list[RegisterSpec]:
    count = draw(st.integers(1, 60))
    found = []
    for n in range(count):
        table = draw(st.sampled_from(["holding", "input", "coil", "discrete"]))
        interval = draw(st.sampled_from([None, None, 5.0, 60.0]))
        if table in ("coil", "discrete"):
            address = draw(st.integers(0, 5000))
            found.append(RegisterSpec(name=f"r{n}", table=table, address=address,
                                      interval=interval))
            continue
        kind = draw(st.sampled_from(sorted(KINDS)))
        address = draw(st.integers(0, 400))
        extra = {"length": 5} if kind == "string" else {}
        found.append(RegisterSpec.model_validate(
            {"name": f"r{n}", "table": table, "address": address, "type": kind,
             "interval": interval, **extra}))
    return found


@given(registers=register_maps(), gap=st.integers(0, 20), max_read=st.integers(5, 125))
def test_every_register_is_read_once_and_no_read_is_too_long(
    registers: list[RegisterSpec], gap: int, max_read: int
) -> None:
    reads = plan_reads(registers, interval=10.0, max_gap=gap, max_read=max_read)
    carried = [id(r) for read in reads for r in read.registers]
    assert sorted(carried) == sorted(id(r) for r in registers)  # each exactly once
    for read in reads:
        bits = read.table in ("coil", "discrete")
        assert 1 <= read.count <= (MAX_READ_BITS if bits else min(max_read, MAX_READ_REGISTERS))
        for register in read.registers:
            assert register.table == read.table
            assert (register.interval or 10.0) == read.interval
            assert read.address <= register.address
            assert register.address + register.words <= read.address + read.count
        # No unmapped run inside a read is longer than the gap allowed, and the read
        # starts and ends on its registers.
        end = read.address
        for register in sorted(read.registers, key=lambda r: r.address):
            assert register.address - end <= gap
            end = max(end, register.address + register.words)
        assert end == read.address + read.count
        assert min(r.address for r in read.registers) == read.address
    # Merging never gives up on a neighbour it could have taken: two reads of the same
    # table and interval in a row are further apart than the gap, or the next one
    # would not fit.
    for one, two in itertools.pairwise(reads):
        if (one.table, one.interval) == (two.table, two.interval):
            first = min(two.registers, key=lambda r: r.address)
            bits = one.table in ("coil", "discrete")
            most = MAX_READ_BITS if bits else max_read
            too_far = first.address - (one.address + one.count) > gap
            too_long = first.address + first.words - one.address > most
            assert too_far or too_long
