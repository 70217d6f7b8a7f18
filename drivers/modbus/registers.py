"""The register map of a Modbus device: what each value is, where, and how it is encoded.

Addresses are the 0-based addresses on the wire (the PDU address), with the table
named apart: a manual's "register 30001" or "3x0001" is ``table: input, address: 0``,
"40101" is ``table: holding, address: 100``. A 5- or 6-digit "Modicon" number is
not translated: ``address: 30001`` reads input register 30001 (some devices, SMA
inverters for one, really have registers above 30000, so guessing which was meant
could read the wrong register): subtract 30001 (input) or 40001 (holding). Hex needs
its ``0x``: ``address: 0x0C``.

A value spans as many registers as its type needs (u16/i16: 1, u32/i32/f32: 2,
u64/i64/f64: 4, string and bitfield: ``length``); coils and discrete inputs are one
bit each (``type: bool``, the default on those tables).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tidegate.config.located_errors import LocatedError
from tidegate.config.types import Duration, Name, Section

Table = Literal["holding", "input", "coil", "discrete"]
RegisterType = Literal[
    "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "string", "bitfield", "bool"
]
Order = Literal["big", "little"]

BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete"})
"""Tables of single bits (read with FC1/FC2); the others hold 16-bit registers."""
READ_FUNCTION: dict[str, int] = {"holding": 3, "input": 4, "coil": 1, "discrete": 2}
"""The function code that reads each table."""
WRITABLE_TABLES: frozenset[str] = frozenset({"holding", "coil"})
"""Tables a master can write; input registers and discrete inputs are read-only."""

WORDS: dict[str, int] = {
    "u16": 1, "i16": 1, "u32": 2, "i32": 2, "f32": 2, "u64": 4, "i64": 4, "f64": 4,
}
"""Registers each fixed-size type spans."""
NUMERIC: frozenset[str] = frozenset(WORDS)
MAX_ADDRESS = 0xFFFF


class RegisterSpec(Section):
    """One value in a device's register map: a named reading (and, on writable
    tables, a value ``write`` can set)."""

    name: Name = Field(
        description="The register's name: its events are `<device>.<name>`; `write` takes it."
    )
    table: Table = Field(
        "holding",
        description="holding (FC3, writable), input (FC4, read-only), coil (FC1, writable "
        "bits) or discrete (FC2, read-only bits).",
    )
    address: int = Field(
        ge=0,
        le=MAX_ADDRESS,
        description="0-based address on the wire, within `table` (a manual's 30001 is "
        "`table: input, address: 0`; 40101 is `table: holding, address: 100`).",
    )
    type: RegisterType = Field(
        "u16",
        description="u16, i16, u32, i32, u64, i64, f32, f64 (IEEE 754), string (ASCII, "
        "`length` registers, 2 characters each), bitfield (`length` registers of flags), "
        "or bool (coils and discrete inputs; the default there).",
    )
    length: int | None = Field(
        None,
        ge=1,
        le=125,
        description="Registers a string or bitfield spans (string: 2 characters each; "
        "bitfield: 1 by default).",
    )
    byte_order: Order = Field(
        "big", description="Byte order inside each register: big (the Modbus standard) or little."
    )
    word_order: Order = Field(
        "big",
        description="Order of the registers of a multi-register value: big (most "
        "significant register first, the usual) or little (word-swapped, e.g. many PLCs).",
    )
    scale: float | None = Field(
        None, description="Multiply the raw number by this (0.1 for a value in tenths)."
    )
    offset: float | None = Field(
        None, description="Then add this (e.g. -40 for a sensor that reports K+40)."
    )
    decimals: int | None = Field(
        None,
        ge=0,
        le=15,
        description="Round the result to this many decimal places, exactly (half to even).",
    )
    unit: str | None = Field(None, max_length=32, description="Unit of the event, e.g. V, kWh.")
    bits: dict[Name, int] | None = Field(
        None,
        description="bitfield only: flag name -> bit number (0 = least significant bit of "
        "the value); each named bit becomes a bool event. Without `bits` the bitfield is "
        "one integer event.",
    )
    interval: Duration | None = Field(
        None,
        gt=0,
        description="Poll this register at its own interval (default: the device's).",
    )

    @model_validator(mode="before")
    @classmethod
    def _bits_are_bools(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" not in data and data.get("table") in BIT_TABLES:
            return {**data, "type": "bool"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RegisterSpec:
        # Each at the key to change (tidegate.config.located_errors), not the register's line.
        where = f"register {self.name!r}"
        if (self.table in BIT_TABLES) != (self.type == "bool"):
            raise LocatedError(
                f"{where}: type bool goes with tables coil and discrete, and only there"
                if self.type == "bool"
                else f"{where}: a {self.table} holds single bits: leave `type` out (bool)",
                "type",
            )
        if self.type == "string" and self.length is None:
            raise LocatedError(
                f"{where}: a string needs `length` (registers, 2 characters each)", "type"
            )
        if self.length is not None and self.type not in ("string", "bitfield"):
            raise LocatedError(f"{where}: `length` is for string and bitfield only", "length")
        if self.bits is not None:
            if self.type != "bitfield":
                raise LocatedError(f"{where}: `bits` is for type bitfield only", "bits")
            top = 16 * self.words - 1
            wrong = sorted(k for k, bit in self.bits.items() if not 0 <= bit <= top)
            if wrong:
                raise LocatedError(
                    f"{where}: bit {wrong[0]!r} is not within 0..{top}", "bits", wrong[0]
                )
        if self.scale == 0:
            raise LocatedError(f"{where}: `scale: 0` would make every reading the same", "scale")
        numeric = self.type in NUMERIC
        for key in ("scale", "offset", "decimals"):
            if getattr(self, key) is not None and not numeric:
                raise LocatedError(f"{where}: `{key}` is for numeric types, not {self.type}", key)
        if self.address + self.words - 1 > MAX_ADDRESS:
            raise LocatedError(f"{where}: it would run past address {MAX_ADDRESS}", "address")
        return self

    @property
    def words(self) -> int:
        """Registers (or, on bit tables, bits) the value spans."""
        if self.type == "bool":
            return 1
        return WORDS.get(self.type) or self.length or 1

    @property
    def writable(self) -> bool:
        return self.table in WRITABLE_TABLES

    def event_names(self) -> list[str]:
        """The names of the events one reading of this register makes."""
        return list(self.bits) if self.bits else [self.name]
