"""The simulated device's protocol layer against the spec's worked examples.

Vectors are from the Modbus Application Protocol Specification V1.1b3 (section 6,
"Here is an example of a request to read ...") and the Modbus over Serial Line
spec's CRC example; the CRC is also cross-checked with pymodbus's own (an
independent implementation).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from tidegate.drivers.modbus.sim_config import SimFaults
from tidegate.drivers.modbus.sim_pdu import (
    SlaveTables,
    Table,
    crc16,
    handle_pdu,
    rtu_request_length,
    with_crc,
)
from tidegate.drivers.modbus.sim_slave import Fault, SimSlave


def spec_tables() -> SlaveTables:
    """The data of the spec's examples."""
    tables = SlaveTables()
    # 6.1: coils 20-38 (0-based 19..37) read as CD 6B 05
    bits = [bool(b >> i & 1) for b in bytes.fromhex("CD6B05") for i in range(8)][:19]
    tables.map_bits(Table.COIL, 19, bits)
    # 6.3: registers 108-110 (0-based 107..109) = 0x022B, 0x0000, 0x0064
    tables.map_words(Table.HOLDING, 107, [0x022B, 0x0000, 0x0064])
    # 6.4: input register 9 (0-based 8) = 0x000A
    tables.map_words(Table.INPUT, 8, [0x000A])
    tables.map_bits(Table.DISCRETE, 196, [True, False, True, True, False, True, False, True])
    return tables


@pytest.mark.parametrize(
    ("request_hex", "reply_hex"),
    [
        ("01 0013 0013", "01 03 CD6B05"),
        ("03 006B 0003", "03 06 022B 0000 0064"),
        ("04 0008 0001", "04 02 000A"),
        ("05 00AC FF00", "85 02"),  # coil 173 is not mapped
        ("06 006C 0003", "06 006C 0003"),
        ("10 006B 0002 04 000A 0102", "10 006B 0002"),
        ("07", "87 01"),  # read exception status: not served
        ("2B 0E 01 00", "AB 01"),
        ("03 006B 007E", "83 03"),  # 126 registers: over the limit
        ("03 006B 0000", "83 03"),
        ("03 006B 0004", "83 02"),  # runs past the mapped registers
        ("01 0013 07D1", "81 03"),  # 2001 bits
        ("05 0013 1234", "85 03"),  # a coil is FF00 or 0000
        ("10 006B 0002 03 000A 01", "90 03"),  # byte count disagrees
        ("0F 0013 000A 01 CD", "8F 03"),  # 10 coils need 2 bytes
    ],
)
def test_requests_get_the_specs_replies(request_hex: str, reply_hex: str) -> None:
    tables = spec_tables()
    reply = handle_pdu(tables, bytes.fromhex(request_hex.replace(" ", "")))
    assert reply.hex().upper() == reply_hex.replace(" ", "").upper()


def test_the_specs_discrete_input_example() -> None:
    """6.2 style: 8 inputs from 197 (0-based 196), packed low bit first."""
    assert handle_pdu(spec_tables(), bytes.fromhex("0200C40008")) == bytes.fromhex("0201AD")


def test_writes_change_the_tables_and_are_remembered() -> None:
    tables = spec_tables()
    assert handle_pdu(tables, bytes.fromhex("0F0013000A02CD01")) == bytes.fromhex("0F0013000A")
    assert [tables.coils[19 + i] for i in range(10)] == [
        True, False, True, True, False, False, True, True, True, False,
    ]
    assert handle_pdu(tables, bytes.fromhex("0500140000")) == bytes.fromhex("0500140000")
    assert tables.coils[20] is False
    assert handle_pdu(tables, bytes.fromhex("10006B000204000A0102")) == bytes.fromhex("10006B0002")
    assert handle_pdu(tables, bytes.fromhex("03006B0003")) == bytes.fromhex("0306000A01020064")
    assert (Table.HOLDING, 108) in tables.written and (Table.COIL, 28) in tables.written


def test_crc_of_the_serial_line_spec_example() -> None:
    """Read 10 holding registers from slave 1: 01 03 00 00 00 0A, CRC C5 CD (low first)."""
    assert with_crc(bytes.fromhex("01030000000A")).hex().upper() == "01030000000AC5CD"


@given(st.binary(max_size=300))
def test_crc_agrees_with_pymodbus(data: bytes) -> None:
    # pymodbus returns the CRC byte-swapped (high byte = the one sent first).
    assert crc16(data) == int.from_bytes(FramerRTU.compute_CRC(data).to_bytes(2, "big"), "little")


@pytest.mark.parametrize(
    ("head", "length"),
    [(b"\x01", None), (b"\x01\x03", 8), (b"\x01\x06\x00", 8), (b"\x01\x10\x00\x00\x00", None),
     (b"\x01\x10\x00\x00\x00\x02\x04", 13), (b"\x01\x0f\x00\x00\x00\x0a\x02", 11),
     (b"\x01\x2b", -1)],
)
def test_rtu_request_lengths(head: bytes, length: int | None) -> None:
    assert rtu_request_length(head) == length


def test_injected_faults_come_in_order_then_normal_replies() -> None:
    slave = SimSlave(3, spec_tables())
    slave.inject(Fault.EXCEPTION, code=4)
    slave.inject(Fault.TIMEOUT, count=2)
    replies = [slave.answer(bytes.fromhex("0400080001")) for _ in range(4)]
    assert [(r.pdu, r.fault) for r in replies] == [
        (bytes.fromhex("8404"), Fault.EXCEPTION),
        (None, Fault.TIMEOUT),
        (None, Fault.TIMEOUT),
        (bytes.fromhex("0402000A"), None),
    ]
    assert slave.faults_served == {Fault.EXCEPTION: 1, Fault.TIMEOUT: 2}


def test_a_silent_schedule_alternates_speaking_and_silence() -> None:
    now = [0.0]
    slave = SimSlave(
        1, spec_tables(), faults=SimFaults(silent_every=10, silent_for=5), clock=lambda: now[0]
    )
    heard = []
    for t in (0.0, 9.9, 10.0, 14.9, 15.0, 24.9, 25.0, 30.0):
        now[0] = t
        heard.append(slave.answer(bytes.fromhex("0400080001")).pdu is not None)
    assert heard == [True, True, False, False, True, True, False, True]


def test_fault_chances_are_drawn_per_request() -> None:
    slave = SimSlave(
        1, spec_tables(), faults=SimFaults(timeout=0.2, bad_crc=0.1, exception=0.1),
        rng=random.Random(1),
    )
    for _ in range(2000):
        slave.answer(bytes.fromhex("0400080001"))
    # Binomial(2000, p): these bounds are > 6 standard deviations wide.
    assert 300 < slave.faults_served[Fault.TIMEOUT] < 500
    assert 110 < slave.faults_served[Fault.BAD_CRC] < 290
    assert 110 < slave.faults_served[Fault.EXCEPTION] < 290
