"""The number functions: abs, round, clamp, int, float, sqrt, log, exp, floor and ceil.

Each takes values of any kind, as the language hands them over, accepts only
what it defines, and returns a range-checked int or a finite float.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tidegate.rules.expr.errors import ExpressionRuntimeError
from tidegate.rules.expr.values import (
    BOOL,
    INT,
    STRING,
    Value,
    int_result,
    is_plain_number,
    kind_of,
    number_result,
    plain,
)


def number_argument(function: str, value: Value) -> int | float:
    """``value`` as a plain int or float, or the error that ``function`` needs a number."""
    if is_plain_number(value):
        return value  # type: ignore[no-any-return]
    converted = plain(value)
    if is_plain_number(converted):
        return converted  # type: ignore[no-any-return]
    raise ExpressionRuntimeError(f"{function}() needs a number, not {kind_of(value)}")


def absolute(x: Value) -> int | float:
    return number_result(abs(number_argument("abs", x)), "abs()")


def rounded(x: Value, ndigits: Value = None) -> int | float:
    number = number_argument("round", x)
    if ndigits is None:
        if type(number) is float and not math.isfinite(number):
            raise ExpressionRuntimeError("round() of a non-finite number")
        return int_result(round(number), "round()")
    if kind_of(ndigits) != INT:
        raise ExpressionRuntimeError(
            f"round() needs an int number of digits, not {kind_of(ndigits)}"
        )
    # Beyond these, rounding is the identity or zero anyway; bounding ndigits keeps
    # round(5, -10**18) from computing 10**(10**18).
    digits = max(-400, min(400, int(ndigits)))
    return number_result(round(number, digits), "round()")


def clamp(x: Value, lo: Value, hi: Value) -> int | float:
    number = number_argument("clamp", x)
    low, high = number_argument("clamp", lo), number_argument("clamp", hi)
    if low > high:
        raise ExpressionRuntimeError(f"clamp() needs lo <= hi, got {low} > {high}")
    return low if number < low else high if number > high else number


def to_int(x: Value) -> int:
    kind = kind_of(x)
    if kind == BOOL:
        return int(x)
    if kind == STRING:
        try:
            return int_result(int(str(x)), "int()")
        except ValueError:
            raise ExpressionRuntimeError(f"int() cannot read {str(x)[:40]!r}") from None
    number = number_argument("int", x)
    if type(number) is float and not math.isfinite(number):
        raise ExpressionRuntimeError("int() of a non-finite number")
    return int_result(int(number), "int()")


def to_float(x: Value) -> float:
    kind = kind_of(x)
    if kind == BOOL:
        return float(x)
    try:
        result = float(str(x)) if kind == STRING else float(number_argument("float", x))
    except (ValueError, OverflowError):
        raise ExpressionRuntimeError(f"float() cannot read {str(x)[:40]!r}") from None
    if not math.isfinite(result):
        raise ExpressionRuntimeError(f"float() of {str(x)[:40]!r} is not a finite number")
    return result


def _math(
    name: str, op: Callable[[float], float], valid: Callable[[float], bool], why: str
) -> Callable[[Value], float]:
    def apply(x: Value) -> float:
        number = number_argument(name, x)
        if not valid(number):
            raise ExpressionRuntimeError(f"{name}() {why}, got {number}")
        try:
            return number_result(op(number), f"{name}()")
        except (OverflowError, ValueError) as exc:
            raise ExpressionRuntimeError(f"{name}(): {exc}") from None

    return apply


sqrt = _math("sqrt", math.sqrt, lambda x: x >= 0, "needs a number >= 0")
exp = _math("exp", math.exp, lambda x: True, "")


def log(x: Value, base: Value = None) -> float:
    number = number_argument("log", x)
    if not number > 0:
        raise ExpressionRuntimeError(f"log() needs a number > 0, got {number}")
    try:
        if base is None:
            return math.log(number)
        b = number_argument("log", base)
        if not b > 0 or b == 1:
            raise ExpressionRuntimeError(f"log() needs a base > 0 and != 1, got {b}")
        return math.log(number, b)
    except (OverflowError, ValueError) as exc:
        raise ExpressionRuntimeError(f"log(): {exc}") from None


def _rounding(name: str, op: Callable[[float], int]) -> Callable[[Value], int]:
    def apply(x: Value) -> int:
        number = number_argument(name, x)
        if type(number) is int:
            return int_result(number, f"{name}()")
        if not math.isfinite(number):
            raise ExpressionRuntimeError(f"{name}() of a non-finite number")
        return int_result(op(number), f"{name}()")

    return apply


floor = _rounding("floor", math.floor)
ceil = _rounding("ceil", math.ceil)
