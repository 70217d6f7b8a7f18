r"""Frame templates: the bytes an action writes to a serial device, with its arguments filled in.

A template is text or hex, like a ``poll:`` command, with ``{name}`` placeholders
in ``str.format`` syntax (a name and an optional format spec):

```yaml
- "SET {value:.1f}\r\n"                       # text: SET 21.5 CR LF
- "RELAY {channel:d} {state}\r\n"             # text: RELAY 2 ON CR LF
- {hex: "01 06 00 01 {value:04X}", checksum: crc16-modbus}   # Modbus "write register"
```

A text template's characters are bytes ``\x00``-``\xff`` (YAML escapes work in
double quotes), as in ``poll:``. In a hex template every placeholder says how many
hex digits it fills (``{value:04X}``, ``{b:02x}``) and a value that needs more, or
is negative, is refused rather than shifting the rest of the frame; the checksum is
computed over the filled-in bytes and appended, as for a hex ``poll:`` command.

What is checked when the config loads: the braces balance, each placeholder is a
plain name (no ``{a.b}``, ``{a[0]}``, ``{}`` or ``{0}``: a template reads its
arguments, nothing reachable from them), without ``!r``-style conversions or
nested ``{}`` in the spec, with a format spec that fits some value; a hex template
is hex around its placeholders. ``placeholders()`` lists the names, so that the
config declaring the arguments can check it covers them.

What ``render(args)`` refuses (``ActionRefused``, reason ``bad_arguments``,
naming the placeholder; nothing is written): a placeholder without a value, a
value its spec does not fit (``{value:04X}`` with 21.5), a text value with
characters beyond ``\xff``, a hex value that is not exactly its digits.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, TypeAlias

from pydantic import (
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Tag,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from tidegate.config.types import Section
from tidegate.drivers.framing.checksums import CHECKSUMS, ByteOrder, ChecksumKind
from tidegate.errors import ActionRefused

__all__ = ["FrameTemplate", "HexTemplate", "TextTemplate"]

_HEX_SEPARATORS = re.compile(r"[\s:,_-]+")
_HEX_SPEC = re.compile(r"^0(?P<width>[1-9][0-9]*)[xX]$")
_HEX_DIGITS = re.compile(r"^[0-9a-fA-F]+$")
_SAMPLES: tuple[object, ...] = (0, 0.0, "")
"""Values a format spec is tried on at load: one of them must fit it."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    spec: str

    def __str__(self) -> str:
        return f"{{{self.name}:{self.spec}}}" if self.spec else f"{{{self.name}}}"

    def fill(self, args: Mapping[str, object]) -> str:
        if self.name not in args:
            raise ActionRefused(
                f"no value for {self} in the frame template", reason="bad_arguments"
            )
        value = args[self.name]
        try:
            return format(value, self.spec)
        except (ValueError, TypeError) as exc:
            raise ActionRefused(
                f"{self} does not fit {value!r}: {exc}", reason="bad_arguments"
            ) from None


Piece: TypeAlias = str | _Field


@lru_cache(maxsize=256)
def _pieces(template: str) -> tuple[Piece, ...]:
    """The template cut into literal text and placeholders; ValueError when it does not
    parse or a placeholder is more than a name with a format spec."""
    pieces: list[Piece] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # "Single '}' encountered", "unmatched '{'"
        raise ValueError(f"{exc} (write a literal brace as {{{{ or }}}})") from None
    for literal, name, spec, conversion in parsed:
        if literal:
            pieces.append(literal)
        if name is None:
            continue
        tail = (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
        shown = f"{{{name}{tail}}}"
        if not name.isidentifier():
            raise ValueError(
                f"placeholder {shown}: a placeholder is a plain name like {{value}} "
                "(no positions, attributes or indexes)"
            )
        if conversion:
            raise ValueError(f"placeholder {shown}: no conversions (!r, !s, !a); use a format spec")
        if "{" in (spec or ""):
            raise ValueError(f"placeholder {shown}: no placeholders inside a format spec")
        field = _Field(name, spec or "")
        if not any(_fits(sample, field.spec) for sample in _SAMPLES):
            raise ValueError(f"placeholder {shown}: ':{spec}' is not a format spec for any value")
        pieces.append(field)
    return tuple(pieces)


def _fits(value: object, spec: str) -> bool:
    try:
        format(value, spec)
    except (ValueError, TypeError):
        return False
    return True


def _fields(pieces: tuple[Piece, ...]) -> Iterator[_Field]:
    return (piece for piece in pieces if isinstance(piece, _Field))


def _latin1(text: str, what: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"{what}: use characters from \\x00 to \\xff (write other bytes as \\xNN)"
        ) from None


class TextTemplate(str):
    """A text frame template, e.g. ``"SET {value:.1f}\\r\\n"``: a ``str`` checked when
    the config loads (see the module docstring)."""

    __slots__ = ()

    def placeholders(self) -> frozenset[str]:
        """The argument names the template uses."""
        return frozenset(field.name for field in _fields(_pieces(self)))

    def render(self, args: Mapping[str, object]) -> bytes:
        """The frame with ``args`` filled in; ``ActionRefused`` (``bad_arguments``) when
        they do not fit."""
        out: list[str] = []
        for piece in _pieces(self):
            if isinstance(piece, str):
                out.append(piece)
                continue
            text = piece.fill(args)
            try:
                text.encode("latin-1")
            except UnicodeEncodeError:
                raise ActionRefused(
                    f"{piece} gave {text!r}: characters beyond \\xff", reason="bad_arguments"
                ) from None
            out.append(text)
        return "".join(out).encode("latin-1")

    @classmethod
    def _checked(cls, value: str) -> TextTemplate:
        _pieces(value)
        _latin1(value, "template")
        return cls(value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls._checked,
            core_schema.str_schema(min_length=1),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "minLength": 1}


class HexTemplate(Section):
    """A binary frame template: hex with placeholders that fill whole digits, and an
    optional checksum appended after filling in (Modbus RTU requests)."""

    hex: str = Field(
        min_length=1,
        description="The bytes in hex with placeholders of a fixed number of hex digits, "
        'e.g. "01 06 00 01 {value:04X}".',
    )
    checksum: ChecksumKind | None = Field(
        None, description="Append this checksum of the filled-in bytes."
    )
    checksum_byte_order: ByteOrder | None = Field(
        None, description="Byte order of the appended checksum; default: the algorithm's custom."
    )

    @field_validator("hex")
    @classmethod
    def _hex_around_placeholders(cls, value: str) -> str:
        pieces = _pieces(value)
        for field in _fields(pieces):
            if _HEX_SPEC.match(field.spec) is None:
                raise ValueError(
                    f"placeholder {field}: in hex, say how many hex digits it fills, "
                    f"e.g. {{{field.name}:04X}}"
                )
        # Filled with zeros of each placeholder's width, the whole must be hex bytes.
        try:
            _hex_bytes("".join(p if isinstance(p, str) else "0" * _width(p) for p in pieces))
        except ValueError:
            raise ValueError(
                f"'{value}' is not hex bytes around its placeholders; "
                'write e.g. "01 06 00 01 {value:04X}"'
            ) from None
        return value

    def placeholders(self) -> frozenset[str]:
        """The argument names the template uses."""
        return frozenset(field.name for field in _fields(_pieces(self.hex)))

    def render(self, args: Mapping[str, object]) -> bytes:
        """The frame with ``args`` filled in and the checksum appended; ``ActionRefused``
        (``bad_arguments``) when they do not fit."""
        out: list[str] = []
        for piece in _pieces(self.hex):
            if isinstance(piece, str):
                out.append(piece)
                continue
            digits = piece.fill(args)
            width = _width(piece)
            if len(digits) != width or _HEX_DIGITS.match(digits) is None:
                raise ActionRefused(
                    f"{piece} gave {digits!r} for {args[piece.name]!r}: "
                    f"not {width} hex digits (a value from 0 to 0x{'F' * width})",
                    reason="bad_arguments",
                )
            out.append(digits)
        data = _hex_bytes("".join(out))
        if self.checksum is None:
            return data
        algorithm = CHECKSUMS[self.checksum]
        return data + algorithm.encode(algorithm.compute(data), self.checksum_byte_order)


def _width(field: _Field) -> int:
    match = _HEX_SPEC.match(field.spec)
    assert match is not None  # checked when the template loaded
    return int(match["width"])


def _hex_bytes(text: str) -> bytes:
    tokens = [t for t in _HEX_SEPARATORS.split(text.strip()) if t]
    digits = "".join(t[2:] if t.lower().startswith("0x") else t for t in tokens)
    try:
        if not digits or len(digits) % 2:
            raise ValueError
        return bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"'{text}' is not hex bytes") from None


def _kind(value: Any) -> str:
    return "hex" if isinstance(value, dict | HexTemplate) else "text"


# Tagged by the value's shape, so that a mistake in a `{hex: ...}` mapping is reported
# once, as that, and not also as "should be a string".
FrameTemplate: TypeAlias = Annotated[
    Annotated[TextTemplate, Tag("text")] | Annotated[HexTemplate, Tag("hex")],
    Discriminator(_kind),
]
"""A text template (``"SET {value:.1f}\\r\\n"``) or ``{hex: ..., checksum: ...}``."""
