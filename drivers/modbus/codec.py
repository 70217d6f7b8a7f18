"""Register words <-> values, both ways, as a register map entry says.

Reading: the words a device returned (16-bit ints; for coils and discrete inputs,
one 0/1 per bit) become the value the event carries. The words are put in
most-significant-first order (``word_order: little`` reverses them), each word
becomes two bytes (``byte_order: little`` swaps them), and the bytes are read
big-endian as the type. Then, for numbers, ``value = raw * scale + offset``,
rounded as the parse layer rounds (``tidegate.drivers.parsing.conversions``: a raw
215 with ``scale: 0.1`` is 21.5, not 21.500000000000004; ``decimals`` rounds exactly,
half to even); an f32 is its shortest decimal (21.3, not 21.299999237060547).
A string drops trailing NULs and spaces; a bitfield with ``bits`` is a mapping of
flag names to bools, otherwise one unsigned int.

Writing (and the simulated device): ``encode`` does the reverse. A number is
``(value - offset) / scale``, in exact decimal arithmetic; an integer type rounds
that to the nearest integer (half to even) and refuses what its type cannot hold;
a string is padded with NULs to ``length`` registers.

``decode``/``encode`` build the conversion each call; the driver compiles one
``RegisterCodec`` per register once.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TypeAlias

from tidegate.drivers.modbus.exceptions import ValueOutOfRange
from tidegate.drivers.modbus.registers import RegisterSpec
from tidegate.drivers.parsing.conversions import number_converter, shortest_f32
from tidegate.drivers.parsing.records import FrameRejected
from tidegate.event import Scalar

Decoded: TypeAlias = Scalar | dict[str, bool]
"""A register's value: a scalar, or flag name -> bool for a bitfield with ``bits``."""
Writable: TypeAlias = Scalar | Mapping[str, bool]

_FORMATS: dict[str, str] = {
    "u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "u64": ">Q", "i64": ">q",
    "f32": ">f", "f64": ">d",
}
_INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "u16": (0, 2**16 - 1), "i16": (-(2**15), 2**15 - 1),
    "u32": (0, 2**32 - 1), "i32": (-(2**31), 2**31 - 1),
    "u64": (0, 2**64 - 1), "i64": (-(2**63), 2**63 - 1),
}


class RegisterCodec:
    """The conversions of one register, built once."""

    __slots__ = ("_convert", "_signed16", "_struct", "spec", "words")

    def __init__(self, spec: RegisterSpec) -> None:
        self.spec = spec
        self.words = spec.words
        fmt = _FORMATS.get(spec.type)
        self._struct = struct.Struct(fmt) if fmt else None
        # One big-endian register is its own value: no bytes to assemble (the common case).
        self._signed16: bool | None = (
            spec.type == "i16" if spec.type in ("u16", "i16") and spec.byte_order == "big"
            else None
        )
        scaled = spec.scale is not None or spec.offset is not None or spec.decimals is not None
        self._convert = (
            number_converter(
                1.0 if spec.scale is None else spec.scale,
                0.0 if spec.offset is None else spec.offset,
                spec.decimals,
                spec.name,
            )
            if scaled
            else None
        )

    # --- words <-> bytes -----------------------------------------------------------

    def _bytes(self, words: Sequence[int]) -> bytes:
        if len(words) != self.words:
            raise FrameRejected(
                f"register '{self.spec.name}': {len(words)} words, expected {self.words}"
            )
        ordered = reversed(words) if self.spec.word_order == "little" else words
        order = self.spec.byte_order
        try:
            return b"".join(word.to_bytes(2, order) for word in ordered)
        except OverflowError:
            raise FrameRejected(f"register '{self.spec.name}': a word outside 0..65535") from None

    def _words(self, data: bytes) -> list[int]:
        order = self.spec.byte_order
        words = [int.from_bytes(data[i : i + 2], order) for i in range(0, len(data), 2)]
        return words[::-1] if self.spec.word_order == "little" else words

    # --- reading --------------------------------------------------------------------

    def decode(self, words: Sequence[int]) -> Decoded:
        """The value ``words`` hold; raises FrameRejected for a value that is not one
        (NaN, infinity, text that is not UTF-8)."""
        kind = self.spec.type
        if self._signed16 is not None and len(words) == 1 and 0 <= words[0] <= 0xFFFF:
            raw16 = words[0] - 0x10000 if self._signed16 and words[0] & 0x8000 else words[0]
            return raw16 if self._convert is None else self._convert(raw16)
        if kind == "bool":
            if len(words) != 1:
                raise FrameRejected(f"register '{self.spec.name}': expected one bit")
            return bool(words[0])
        data = self._bytes(words)
        if self._struct is not None:
            (raw,) = self._struct.unpack(data)
            if kind[0] == "f":
                if not math.isfinite(raw):
                    raise FrameRejected(f"register '{self.spec.name}': {raw} is not a number")
                if kind == "f32":
                    raw = shortest_f32(raw)
            return raw if self._convert is None else self._convert(raw)
        if kind == "string":
            # Text ends at the first NUL (devices leave garbage after a C terminator);
            # padding spaces go too. Bytes that are not UTF-8 are Latin-1, which every
            # byte is (a meter's "°" is often 0xB0).
            text = data.split(b"\x00", 1)[0].rstrip(b" ")
            try:
                return text.decode("utf-8")
            except UnicodeDecodeError:
                return text.decode("latin-1")
        number = int.from_bytes(data, "big")  # bitfield
        if self.spec.bits is None:
            return number
        return {name: bool(number >> bit & 1) for name, bit in self.spec.bits.items()}

    # --- writing --------------------------------------------------------------------

    def encode(self, value: Writable) -> list[int]:
        """The words (for coils: one 0/1) that hold ``value``; raises ValueOutOfRange
        for a value the register cannot hold."""
        kind, name = self.spec.type, self.spec.name
        if kind == "bool":
            if not isinstance(value, bool | int) or value not in (0, 1):
                raise ValueOutOfRange(f"register '{name}': a bit is true or false, not {value!r}")
            return [int(value)]
        if kind == "string":
            if not isinstance(value, str):
                raise ValueOutOfRange(f"register '{name}': expects text, not {value!r}")
            data = value.encode("utf-8")
            size = 2 * self.words
            if len(data) > size:
                raise ValueOutOfRange(
                    f"register '{name}': {len(data)} bytes of text do not fit in {size}"
                )
            return self._words(data.ljust(size, b"\x00"))
        if kind == "bitfield":
            return self._words(self._bitfield(value).to_bytes(2 * self.words, "big"))
        return self._words(self._number(value))

    def merge_bits(self, flags: Mapping[str, bool], words: Sequence[int]) -> list[int]:
        """A bitfield's ``words`` with the named ``flags`` set or cleared and its other
        bits kept (the change of a read-modify-write)."""
        bits = self.spec.bits or {}
        unknown = sorted(set(flags) - set(bits))
        if unknown:
            raise ValueOutOfRange(f"register '{self.spec.name}': no bit named {unknown[0]!r}")
        number = int.from_bytes(self._bytes(words), "big")
        for flag, on in flags.items():
            number = number | 1 << bits[flag] if on else number & ~(1 << bits[flag])
        return self._words(number.to_bytes(2 * self.words, "big"))

    def _bitfield(self, value: Writable) -> int:
        name, top = self.spec.name, 2 ** (16 * self.words) - 1
        if isinstance(value, Mapping):
            bits = self.spec.bits or {}
            unknown = sorted(set(value) - set(bits))
            if unknown:
                raise ValueOutOfRange(f"register '{name}': no bit named {unknown[0]!r}")
            return sum(1 << bits[flag] for flag, on in value.items() if on)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise ValueOutOfRange(f"register '{name}': a bitfield is an integer 0..{top}")
        return value

    def _number(self, value: Writable) -> bytes:
        name, kind = self.spec.name, self.spec.type
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueOutOfRange(f"register '{name}': expects a number, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueOutOfRange(f"register '{name}': {value} is not a finite number")
        raw = self._unscaled(value)
        assert self._struct is not None  # every numeric type has a format
        if kind[0] == "f":
            try:
                return self._struct.pack(float(raw))
            except (OverflowError, struct.error):
                raise ValueOutOfRange(
                    f"register '{name}': {value} does not fit in {kind}"
                ) from None
        integer = int(raw.to_integral_value(rounding=ROUND_HALF_EVEN))
        low, high = _INTEGER_RANGES[kind]
        if not low <= integer <= high:
            raise ValueOutOfRange(
                f"register '{name}': {value} is raw {integer}, outside {kind}'s {low}..{high}"
            )
        return self._struct.pack(integer)

    def _unscaled(self, value: int | float) -> Decimal:
        """``(value - offset) / scale`` exactly (a float as its shortest decimal)."""
        exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
        try:
            if self.spec.offset is not None:
                exact -= Decimal(repr(self.spec.offset))
            if self.spec.scale is not None:
                exact /= Decimal(repr(self.spec.scale))
        except (InvalidOperation, ArithmeticError):
            raise ValueOutOfRange(f"register '{self.spec.name}': cannot unscale {value}") from None
        return exact


def decode(spec: RegisterSpec, words: Sequence[int]) -> Decoded:
    """The value ``words`` (registers, or 0/1 per bit) hold under ``spec``."""
    return RegisterCodec(spec).decode(words)


def encode(spec: RegisterSpec, value: Writable) -> list[int]:
    """The words (registers, or one 0/1 for a coil) that make ``spec`` read ``value``."""
    return RegisterCodec(spec).encode(value)
