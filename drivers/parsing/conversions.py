"""Conversions: one raw value, as a format pulled it out of a frame, into the value
a field publishes. Never a wrong number:

- ``number`` without scale and bias: an integer in the record (a text of digits, a
  JSON integer) stays an int, exact however many digits it has; any other number
  becomes the float it reads as. An integer that an event cannot carry (outside
  -2**63 .. 2**64-1, what the JSON encoder writes) is rejected, never rounded.
- ``scale``/``bias``: a float, rounded to the resolution the raw value, the scale
  and the bias give (a raw 3 with ``scale: 0.1`` is 0.3, not 0.30000000000000004).
  Binary floats: cheap, and exact at that resolution.
- an explicit ``decimals:``: computed from the decimal text with ``decimal.Decimal``
  (exact), then rounded half to even at that place (2.675 -> 2.68, 2.665 -> 2.66,
  21.45 -> 21.4), then made a float. A binary float cannot do this: 2.675 is stored
  as 2.67499999..., so ``round`` gave 2.67.
- ``f32`` struct values: the shortest decimal that is the same float32 (21.3, not
  21.299999237060547, which is the same bits read as a double).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
)
from typing import TypeAlias

from tidegate.drivers.parsing.config import FieldSpec
from tidegate.drivers.parsing.records import FrameRejected
from tidegate.event import Scalar

RawValue: TypeAlias = str | int | float | bool
"""A value as a format extracts it, before the field's conversion."""

Converter: TypeAlias = Callable[[RawValue], Scalar]

INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""The integers an event carries: what the JSON encoder (orjson) can write."""

_EXACT_FLOAT_INT = 2**53
"""Below this every integer is a float exactly; above, an integral float may be a
rounded one (9007199254740993.0 reads as 9007199254740992.0)."""

_TRUE = frozenset({"1", "true", "on", "yes", "y", "t", "high"})
_FALSE = frozenset({"0", "false", "off", "no", "n", "f", "low"})

# Exact arithmetic for `decimals`: 200 digits hold any product of a frame's number and
# a config's scale; anything that would need more raises Inexact and is rejected.
_EXACT = Context(
    prec=200, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact, InvalidOperation]
)
_ROUNDING = Context(prec=400, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation])
_FLOAT_DIGITS = 308  # the largest float is 1.8e308: 309 digits before the point
_F32 = struct.Struct("<f")
_F32_MIN_NORMAL = 2.0**-126


def _finite(value: float, key: str) -> float:
    if not math.isfinite(value):
        raise FrameRejected(f"field '{key}': {value} is not a finite number")
    return value


def _fits(value: int, key: str) -> int:
    if INT_MIN <= value <= INT_MAX:
        return value
    raise FrameRejected(f"field '{key}': integer {str(value)[:40]} does not fit in 64 bits")


def to_number(raw: RawValue, key: str) -> float:
    """``raw`` as a float (for scaling and times); rejects what is not a finite number."""
    if isinstance(raw, bool):
        raise FrameRejected(f"field '{key}': {raw} is not a number")
    try:
        return _finite(float(raw), key)
    except (ValueError, OverflowError):
        raise FrameRejected(f"field '{key}': {str(raw)[:40]!r} is not a number") from None


def _integer(text: str) -> int | None:
    """``text`` (stripped) as an int when it is an integer in ASCII digits, else None.
    Past 20 digits the value is only known to be beyond 64 bits (``int()`` is not
    asked: it refuses more than 4,300 digits), and comes back as ``INT_MAX + 1``."""
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not (digits.isdigit() and digits.isascii()):
        return None
    significant = digits.lstrip("0")
    if len(significant) > 20:
        return INT_MAX + 1
    value = int(significant or "0")
    return -value if text[:1] == "-" else value


def _plain_number(raw: RawValue, key: str) -> int | float:
    """A ``number`` without scale and bias: an integer stays an int (exact)."""
    if isinstance(raw, str):
        text = raw.strip()
        value = _integer(text)
        if value is None:
            return to_number(text, key)
        if INT_MIN <= value <= INT_MAX:
            return value
        raise FrameRejected(f"field '{key}': integer {text[:40]} does not fit in 64 bits")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return _fits(raw, key)
    return to_number(raw, key)


def places(number: RawValue) -> int:
    """Decimal places ``number`` is written with: "21.50" -> 1 (trailing zeros do not
    count), 0.25 -> 2, 3 -> 0, 1e-05 -> 5. Runs on every scaled value: kept cheap."""
    if isinstance(number, str):
        text = number.strip()
    elif isinstance(number, float):
        text = repr(number)
    else:
        return 0
    if "e" in text or "E" in text:
        mantissa, _, exponent = text.lower().partition("e")
        fraction = mantissa.partition(".")[2].rstrip("0")
        try:
            return max(0, len(fraction) - int(exponent))
        except ValueError:
            return len(fraction)
    dot = text.find(".")
    return 0 if dot < 0 else len(text.rstrip("0")) - dot - 1


def _to_int(raw: RawValue, key: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return _fits(raw, key)
    if isinstance(raw, float) and raw.is_integer():
        if abs(raw) >= _EXACT_FLOAT_INT:
            raise FrameRejected(
                f"field '{key}': {raw!r} is a float too large to be an exact integer"
            )
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) <= 24:  # 64 bits in hex or decimal, and far below int()'s limit
            try:
                return _fits(int(text, 16) if text[:2].lower() == "0x" else int(text), key)
            except ValueError:
                pass
    raise FrameRejected(f"field '{key}': {str(raw)[:40]!r} is not an integer")


def _to_bool(raw: RawValue, key: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float):
        return raw != 0
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise FrameRejected(f"field '{key}': {raw[:40]!r} is not a boolean")


def auto(raw: RawValue) -> Scalar:
    """Type an unlisted value: keep JSON's types, guess for text; an integer stays an
    int. A number that cannot be published exactly stays the text it was."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw if INT_MIN <= raw <= INT_MAX else str(raw)
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    word = text.lower()
    if word in ("true", "false"):
        return word == "true"
    number = _integer(text)
    if number is not None:
        return number if INT_MIN <= number <= INT_MAX else raw
    try:
        value = float(text)
    except ValueError:
        return raw
    return value if math.isfinite(value) else raw


def _same_f32(candidate: float, value: float) -> bool:
    try:
        return bool(_F32.unpack(_F32.pack(candidate))[0] == value)
    except OverflowError:  # rounded past the largest float32
        return False


def shortest_f32(value: float) -> float:
    """The shortest decimal that is the same float32 as ``value`` (a float32 read as a
    double): 21.299999237060547 -> 21.3; the one nearest ``value`` among the shortest.

    For normal float32s, six digits name one float32 at most, so a shorter decimal is
    what rounding to six digits gives; subnormals have fewer digits, so those start at
    one. At each length the nearest decimal is tried, then the one on the other side
    of ``value`` (at a power of two the float32s below are twice as dense as above).
    """
    if value == 0.0 or not math.isfinite(value):
        return value
    size = abs(value)
    sign = math.copysign(1.0, value)
    for digits in range(1 if size < _F32_MIN_NORMAL else 6, 10):
        text = f"{size:.{digits - 1}e}"
        nearest = float(text)
        if _same_f32(nearest, size):
            return sign * nearest
        mantissa, _, exponent = text.partition("e")
        step = 1 if nearest < size else -1  # the n-digit decimal on the other side
        other = float(f"{int(mantissa.replace('.', '')) + step}e{int(exponent) - digits + 1}")
        if _same_f32(other, size):
            return sign * other
    return value  # not reached: nine digits always name the float32


def _decimal(raw: RawValue, key: str) -> Decimal:
    """The exact decimal ``raw`` was written as (a float: its shortest repr)."""
    try:
        if isinstance(raw, str):
            return Decimal(raw.strip())
        return Decimal(raw if isinstance(raw, int) else repr(raw))
    except InvalidOperation:
        raise FrameRejected(f"field '{key}': {str(raw)[:40]!r} is not a number") from None


def _is_integer(raw: RawValue) -> bool:
    if isinstance(raw, str):
        return _integer(raw.strip()) is not None
    return isinstance(raw, int)


def _decimal_converter(scale: float, bias: float, decimals: int, key: str) -> Converter:
    """``decimals`` set: raw * scale + bias in exact decimal arithmetic, rounded half to
    even at that place, then a float. Without scale and bias an integer stays an int
    (it has no decimals to round)."""
    plain = scale == 1.0 and bias == 0.0
    factor, offset = Decimal(repr(scale)), Decimal(repr(bias))
    quantum = Decimal(1).scaleb(-decimals)

    def rounded(raw: RawValue) -> Scalar:
        if isinstance(raw, bool) or (plain and _is_integer(raw)):
            return _plain_number(raw, key)  # an int (or the rejection of a bool)
        number = _decimal(raw, key)
        if not number.is_finite():
            to_number(raw, key)  # rejects it, with the usual reason
            raise FrameRejected(f"field '{key}': {str(raw)[:40]!r} is not a finite number")
        try:
            exact = _EXACT.fma(number, factor, offset)
        except (Inexact, InvalidOperation):
            raise FrameRejected(
                f"field '{key}': {str(raw)[:40]!r} has too many digits to round exactly"
            ) from None
        if exact.adjusted() > _FLOAT_DIGITS:  # beyond a float (and the rounding's digits)
            raise FrameRejected(
                f"field '{key}': {str(raw)[:40]!r} gives a number beyond a float's range"
            )
        result = exact.quantize(quantum, rounding=ROUND_HALF_EVEN, context=_ROUNDING)
        return _finite(float(result), key)

    return rounded


def number_converter(
    scale: float, bias: float, decimals: int | None, key: str
) -> Converter:
    """The conversion of a ``number`` field (or a scaled struct field)."""
    if decimals is not None:
        return _decimal_converter(scale, bias, decimals, key)
    if scale == 1.0 and bias == 0.0:
        return lambda raw: _plain_number(raw, key)
    scale_places, bias_places = places(scale), places(bias)

    def scaled(raw: RawValue) -> float:
        # Binary floating point makes 3 * 0.1 0.30000000000000004: round to what the
        # raw value, the scale and the bias can resolve, which is exact.
        value = _finite(to_number(raw, key) * scale + bias, key)
        return round(value, max(places(raw) + scale_places, bias_places))

    return scaled


def converter(spec: FieldSpec, key: str) -> Converter:
    """How a text or JSON field's raw value becomes its published value."""
    if spec.type == "number":
        return number_converter(spec.scale, spec.bias, spec.decimals, key)
    if spec.type == "int":
        return lambda raw: _to_int(raw, key)
    if spec.type == "bool":
        return lambda raw: _to_bool(raw, key)
    return lambda raw: raw if isinstance(raw, str) else str(raw)
