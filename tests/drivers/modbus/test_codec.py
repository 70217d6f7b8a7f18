"""The register codec: vectors worked by hand from IEEE 754 and the byte/word orders,
then a cross-check against pymodbus's own conversions (an independent implementation)."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from tidegate.drivers.modbus.codec import RegisterCodec, decode, encode
from tidegate.drivers.modbus.exceptions import ValueOutOfRange
from tidegate.drivers.modbus.registers import RegisterSpec
from tidegate.drivers.parsing.records import FrameRejected

DATATYPE = ModbusTcpClient.DATATYPE


def spec(type_: str = "u16", **more: Any) -> RegisterSpec:
    return RegisterSpec.model_validate({"name": "r", "address": 0, "type": type_, **more})


# --- by hand -----------------------------------------------------------------------------

HAND: list[tuple[RegisterSpec, list[int], Any]] = [
    (spec("u16"), [0x1234], 0x1234),
    (spec("i16"), [0xFFFE], -2),
    (spec("i16"), [0x8000], -32768),
    # 0x12345678 in the four orders: ABCD, CDAB (word swap), BADC (byte swap), DCBA.
    (spec("u32"), [0x1234, 0x5678], 0x12345678),
    (spec("u32", word_order="little"), [0x5678, 0x1234], 0x12345678),
    (spec("u32", byte_order="little"), [0x3412, 0x7856], 0x12345678),
    (spec("u32", byte_order="little", word_order="little"), [0x7856, 0x3412], 0x12345678),
    (spec("i32"), [0xFFFF, 0xFFFE], -2),
    (spec("i32", word_order="little"), [0xFFFE, 0xFFFF], -2),
    (spec("u64"), [0x0102, 0x0304, 0x0506, 0x0708], 0x0102030405060708),
    (spec("i64"), [0xFFFF] * 4, -1),
    # IEEE 754: 1.0 = 3F80 0000; -2.5 = C020 0000; 21.5 = 41AC 0000 (1.34375 * 2^4).
    (spec("f32"), [0x3F80, 0x0000], 1.0),
    (spec("f32"), [0xC020, 0x0000], -2.5),
    (spec("f32", word_order="little"), [0x0000, 0x41AC], 21.5),
    # 21.3 as a float32 is 41AA 6666, which a double reads as 21.299999237060547.
    (spec("f32"), [0x41AA, 0x6666], 21.3),
    (spec("f64"), [0x3FF0, 0, 0, 0], 1.0),
    (spec("f64", word_order="little"), [0, 0, 0, 0xC004], -2.5),
    (spec("string", length=2), [0x4142, 0x4300], "ABC"),
    (spec("string", length=3), [0x4142, 0x0000, 0x0000], "AB"),
    (spec("string", length=1, byte_order="little"), [0x4241], "AB"),
    (spec("bitfield"), [0x8001], 0x8001),
    (spec("bitfield", bits={"burner": 0, "pump": 1, "fault": 15}), [0x8001],
     {"burner": True, "pump": False, "fault": True}),
    (spec("bitfield", length=2, bits={"high": 16, "low": 0}), [0x0001, 0x0000],
     {"high": True, "low": False}),
    # Scaled: raw -215 (FF29) in tenths; raw 3 * 0.1 is 0.3, not 0.30000000000000004.
    (spec("i16", scale=0.1), [0xFF29], -21.5),
    (spec("u16", scale=0.1), [3], 0.3),
    (spec("u16", offset=-40), [65], 25),
    (spec("u16", scale=0.5, offset=-40), [131], 25.5),
]


DECODE_ONLY: list[tuple[RegisterSpec, list[int], Any]] = [
    # Devices pad strings with spaces as often as with NULs; both are dropped.
    (spec("string", length=3), [0x4142, 0x2020, 0x0000], "AB"),
    (spec("string", length=2), [0x2041, 0x2020], " A"),
    # Text ends at the first NUL: what a device leaves after a C terminator is not text.
    (spec("string", length=4), [0x4142, 0x0000, 0x5858, 0x5858], "AB"),
    (spec("string", length=2), [0x4100, 0x4243], "A"),
    # Bytes that are not UTF-8 are read as Latin-1: a meter's unit "°C" as B0 43.
    (spec("string", length=2), [0x32B0, 0x4300], "2\u00b0C"),
]


@pytest.mark.parametrize(("register", "words", "value"), HAND + DECODE_ONLY)
def test_decodes_hand_worked_vectors(register: RegisterSpec, words: list[int], value: Any) -> None:
    assert decode(register, words) == value


@pytest.mark.parametrize(("register", "words", "value"), HAND)
def test_encodes_hand_worked_vectors(register: RegisterSpec, words: list[int], value: Any) -> None:
    assert encode(register, value) == words


def test_bits_of_coils_and_discrete_inputs() -> None:
    coil = RegisterSpec(name="relay", table="coil", address=3)
    assert coil.type == "bool"
    assert (decode(coil, [1]), decode(coil, [0])) == (True, False)
    assert (encode(coil, True), encode(coil, False)) == ([1], [0])


def test_decimals_round_exactly_half_to_even() -> None:
    # 2.675 as a double is 2.67499999...: round() gives 2.67; the exact decimal gives 2.68.
    assert decode(spec("u16", scale=0.001, decimals=2), [2675]) == 2.68
    assert decode(spec("u16", scale=0.001, decimals=2), [2665]) == 2.66


def test_encoding_undoes_scale_and_rounds_half_to_even() -> None:
    assert encode(spec("u16", scale=0.1), 21.5) == [215]
    assert encode(spec("u16", scale=0.1), 21.55) == [216]  # raw 215.5 -> 216 (even)
    assert encode(spec("u16", scale=0.1), 21.45) == [214]  # raw 214.5 -> 214 (even)
    assert encode(spec("i16", scale=0.5, offset=-40), 25.5) == [131]


@pytest.mark.parametrize(
    ("register", "value", "message"),
    [
        (spec("u16"), 65536, "outside u16's 0..65535"),
        (spec("u16"), -1, "outside u16's 0..65535"),
        (spec("i16"), -32769, "outside i16's"),
        (spec("u16", scale=0.1), 6553.6, "raw 65536"),
        (spec("u16"), True, "expects a number"),
        (spec("u16"), "12", "expects a number"),
        (spec("f32"), 1e39, "does not fit in f32"),
        (spec("f32"), math.nan, "not a finite number"),
        (spec("string", length=1), "ABC", "3 bytes of text do not fit in 2"),
        (spec("bitfield"), 0x10000, "0..65535"),
        (spec("bitfield", bits={"a": 0}), {"b": True}, "no bit named 'b'"),
        (RegisterSpec(name="c", table="coil", address=0), 2, "true or false"),
    ],
)
def test_refuses_values_the_register_cannot_hold(
    register: RegisterSpec, value: Any, message: str
) -> None:
    with pytest.raises(ValueOutOfRange, match=message.replace("(", r"\(").replace(".", r"\.")):
        encode(register, value)


@pytest.mark.parametrize(
    ("register", "words", "message"),
    [
        (spec("f32"), [0x7FC0, 0x0000], "nan is not a number"),
        (spec("f32"), [0x7F80, 0x0000], "inf is not a number"),
        (spec("u32"), [1], "1 words, expected 2"),
    ],
)
def test_rejects_readings_that_are_not_values(
    register: RegisterSpec, words: list[int], message: str
) -> None:
    with pytest.raises(FrameRejected, match=message):
        decode(register, words)


# --- against pymodbus's own conversions ---------------------------------------------------

FIXED = {
    "u16": (DATATYPE.UINT16, st.integers(0, 2**16 - 1)),
    "i16": (DATATYPE.INT16, st.integers(-(2**15), 2**15 - 1)),
    "u32": (DATATYPE.UINT32, st.integers(0, 2**32 - 1)),
    "i32": (DATATYPE.INT32, st.integers(-(2**31), 2**31 - 1)),
    "u64": (DATATYPE.UINT64, st.integers(0, 2**64 - 1)),
    "i64": (DATATYPE.INT64, st.integers(-(2**63), 2**63 - 1)),
    "f64": (DATATYPE.FLOAT64, st.floats(allow_nan=False, allow_infinity=False)),
    "f32": (DATATYPE.FLOAT32, st.floats(width=32, allow_nan=False, allow_infinity=False)),
}


ORDERS = st.sampled_from(["big", "little"])


@given(data=st.data(), kind=st.sampled_from(sorted(FIXED)), order=ORDERS)
def test_numbers_agree_with_pymodbus(data: st.DataObject, kind: str, order: str) -> None:
    datatype, values = FIXED[kind]
    value = data.draw(values)
    register = spec(kind, word_order=order)
    theirs = ModbusTcpClient.convert_to_registers(value, datatype, word_order=order)  # type: ignore[arg-type]
    assert encode(register, value) == theirs
    back = decode(register, theirs)
    if kind == "f32":  # ours is the shortest decimal of the same float32
        assert struct.pack(">f", back) == struct.pack(">f", value)
    else:
        assert back == value
        assert back == ModbusTcpClient.convert_from_registers(theirs, datatype, word_order=order)  # type: ignore[arg-type]


@given(text=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20))
def test_strings_agree_with_pymodbus(text: str) -> None:
    theirs = ModbusTcpClient.convert_to_registers(text, DATATYPE.STRING)
    register = spec("string", length=len(theirs))
    assert encode(register, text) == theirs
    assert decode(register, theirs) == text == ModbusTcpClient.convert_from_registers(
        theirs, DATATYPE.STRING
    )


@given(word=st.integers(0, 0xFFFF))
def test_bitfields_agree_with_pymodbus(word: int) -> None:
    # pymodbus lists a register's bits as it packs coils: the low byte's bits
    # (LSB first) after the high byte's. Ours are the value's bits: bit n is 2**n.
    register = spec("bitfield", bits={f"b{n}": n for n in range(16)})
    theirs = ModbusTcpClient.convert_from_registers([word], DATATYPE.BITS)
    ours = decode(register, [word])
    assert isinstance(ours, dict) and isinstance(theirs, list)
    assert [ours[f"b{n}"] for n in range(16)] == [theirs[n ^ 8] for n in range(16)]
    assert encode(register, ours) == [word]


PACK = {"u16": "H", "i16": "h", "u32": "I", "i32": "i", "u64": "Q", "i64": "q", "f32": "f",
        "f64": "d"}


@given(data=st.data(), kind=st.sampled_from(sorted(FIXED)), word_order=ORDERS)
def test_byte_swapped_numbers_agree_with_struct(
    data: st.DataObject, kind: str, word_order: str
) -> None:
    # `byte_order: little`: each register's two bytes are swapped, done here by hand
    # from struct's big-endian bytes (pymodbus has no byte-swapped orders to compare).
    value = data.draw(FIXED[kind][1])
    raw = struct.pack(">" + PACK[kind], value)
    words = [raw[i + 1] << 8 | raw[i] for i in range(0, len(raw), 2)]
    if word_order == "little":
        words.reverse()
    register = spec(kind, byte_order="little", word_order=word_order)
    assert encode(register, value) == words
    back = decode(register, words)
    if kind == "f32":
        assert struct.pack(">f", back) == raw
    else:
        assert back == value


def test_merging_bits_keeps_the_unnamed_ones() -> None:
    register = spec("bitfield", bits={"burner": 0, "pump": 1, "fault": 15})
    codec = RegisterCodec(register)
    # 0x8011: fault and burner on, and bit 4, which has no name.
    assert codec.merge_bits({"pump": True}, [0x8011]) == [0x8013]
    assert codec.merge_bits({"burner": False, "fault": False}, [0x8011]) == [0x0010]
    with pytest.raises(ValueOutOfRange, match="no bit named 'valve'"):
        codec.merge_bits({"valve": True}, [0])
