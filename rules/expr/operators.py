"""What the operators do: arithmetic, negation, comparisons and membership.

Every operation checks the kinds of its operands itself and raises
``ExpressionRuntimeError`` for anything it does not define, so no Python
``TypeError``, ``ZeroDivisionError`` or ``OverflowError`` escapes, and no
Python behaviour the language does not promise is reachable (``'%s' % x``
formatting, list repetition, ``True + 1``). A power is refused *before* it is
computed when its result could not fit.

The static side (``binary_kinds``, ``unary_kinds``, ``compare_allowed``)
states the same rules on sets of kinds, so the compiler can refuse
``name * 2.5`` at load; tests check that both sides agree.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, TypeAlias

from tidegate.rules.expr.errors import ExpressionRuntimeError
from tidegate.rules.expr.values import (
    FLOAT,
    INT,
    LIST,
    MAPPING,
    MAX_FLOAT,
    MAX_INT,
    MAX_STRING,
    MIN_INT,
    NUMBER,
    STRING,
    Kinds,
    Value,
    int_result,
    is_plain_number,
    kind_of,
    number_result,
    plain,
)

BinaryOp: TypeAlias = Callable[[Value, Value], Value]


def _operand_error(symbol: str, a: Value, b: Value) -> ExpressionRuntimeError:
    return ExpressionRuntimeError(f"cannot apply '{symbol}' to {kind_of(a)} and {kind_of(b)}")


def _retry_plain(op: BinaryOp, symbol: str, a: Value, b: Value) -> Value:
    """Run ``op`` again on plain copies of subclass operands, or refuse the operand kinds."""
    plain_a, plain_b = plain(a), plain(b)
    if plain_a is a and plain_b is b:
        raise _operand_error(symbol, a, b)
    return op(plain_a, plain_b)


_NUMERIC_TYPES = (int, float)


def _arithmetic(
    symbol: str, op: BinaryOp, *, divides: bool, retry: BinaryOp | None = None
) -> BinaryOp:
    """A numeric operator: both operands int or float, result range-checked.

    ``retry`` is the operator to run again on plain copies of subclass operands
    (the full ``+`` for a str subclass), if not this numeric one.
    """
    what = f"'{symbol}'"

    def apply(a: Value, b: Value) -> Value:
        if type(a) in _NUMERIC_TYPES and type(b) in _NUMERIC_TYPES:
            if divides and b == 0:
                raise ExpressionRuntimeError(f"{what}: division by zero")
            try:
                result = op(a, b)
            except ArithmeticError as exc:
                raise ExpressionRuntimeError(f"{what}: {exc}") from None
            # Inlined number_result: this is the hot path of every 'set:' formula.
            if type(result) is int:
                if MIN_INT <= result <= MAX_INT:
                    return result
            elif -MAX_FLOAT <= result <= MAX_FLOAT:
                return result
            return number_result(result, what)
        return _retry_plain(retry or apply, symbol, a, b)

    return apply


subtract = _arithmetic("-", operator.sub, divides=False)
true_divide = _arithmetic("/", operator.truediv, divides=True)
floor_divide = _arithmetic("//", operator.floordiv, divides=True)
modulo = _arithmetic("%", operator.mod, divides=True)


def add(a: Value, b: Value) -> Value:
    if type(a) is str and type(b) is str:
        if len(a) + len(b) > MAX_STRING:
            raise ExpressionRuntimeError(
                f"'+': string result is longer than {MAX_STRING} characters"
            )
        return a + b
    return _add_numbers(a, b)


def multiply(a: Value, b: Value) -> Value:
    if type(b) is int and type(a) is str:
        return _repeat(a, b)
    if type(a) is int and type(b) is str:
        return _repeat(b, a)
    return _multiply_numbers(a, b)


# Defined after add and multiply, which they call back for str subclasses.
_add_numbers = _arithmetic("+", operator.add, divides=False, retry=add)
_multiply_numbers = _arithmetic("*", operator.mul, divides=False, retry=multiply)


def _repeat(text: str, times: int) -> str:
    # Checked before building the string: 'a' * 10**9 must not allocate a gigabyte.
    if times > 0 and len(text) * times > MAX_STRING:
        raise ExpressionRuntimeError(f"'*': string result is longer than {MAX_STRING} characters")
    return text * times


def power(a: Value, b: Value) -> Value:
    if not (is_plain_number(a) and is_plain_number(b)):
        return _retry_plain(power, "**", a, b)
    if a == 0 and b < 0:
        raise ExpressionRuntimeError("'**': zero to a negative power")
    if type(a) is int and type(b) is int and b > 0 and abs(a) > 1:
        # |a| >= 2**(bits-1), so |a|**b >= 2**((bits-1)*b): refuse 9**9**9 before computing
        # it. What passes is below 2**(bits*b) <= 2**126: cheap, and range-checked after.
        if (abs(a).bit_length() - 1) * b > 63:
            raise ExpressionRuntimeError("'**': integer result is out of range (beyond ±2**63)")
        return int_result(a**b, "'**'")
    if a < 0 and not (type(b) is int or float(b).is_integer()):
        raise ExpressionRuntimeError("'**': a negative number to a fractional power")
    try:
        result = a**b if type(a) is int and type(b) is int else float(a) ** float(b)
    except (ArithmeticError, ValueError) as exc:
        raise ExpressionRuntimeError(f"'**': {exc}") from None
    return number_result(result, "'**'")


def negate(a: Value) -> Value:
    if is_plain_number(a):
        return number_result(-a, "'-'")
    plain_a = plain(a)
    if plain_a is a or not is_plain_number(plain_a):
        raise ExpressionRuntimeError(f"cannot apply '-' to {kind_of(a)}")
    return negate(plain_a)


def unary_plus(a: Value) -> Value:
    if is_plain_number(a):
        return a
    plain_a = plain(a)
    if plain_a is a or not is_plain_number(plain_a):
        raise ExpressionRuntimeError(f"cannot apply '+' to {kind_of(a)}")
    return plain_a


ARITHMETIC: dict[str, BinaryOp] = {
    "+": add,
    "-": subtract,
    "*": multiply,
    "/": true_divide,
    "//": floor_divide,
    "%": modulo,
    "**": power,
}
UNARY: dict[str, Callable[[Value], Value]] = {"-": negate, "+": unary_plus}


# -------------------------------------------------------------- comparisons


def equal(a: Value, b: Value) -> bool:
    """Equality where a bool never equals a number, and lists/mappings compare item by item."""
    ta, tb = type(a), type(b)
    if ta is tb and ta is not list and ta is not dict:
        return bool(a == b)
    ka, kb = kind_of(a), kind_of(b)
    if ka in NUMBER and kb in NUMBER:
        return bool(a == b)
    if ka != kb:
        return False
    if ka == LIST:
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if ka == MAPPING:
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return bool(plain(a) == plain(b))


def not_equal(a: Value, b: Value) -> bool:
    return not equal(a, b)


def _ordering(symbol: str, op: Callable[[Any, Any], bool]) -> Callable[[Value, Value], bool]:
    """An ordering comparison: two numbers, or two strings."""

    def apply(a: Value, b: Value) -> bool:
        if (is_plain_number(a) and is_plain_number(b)) or (type(a) is str and type(b) is str):
            return op(a, b)
        ka, kb = kind_of(a), kind_of(b)
        if (ka in NUMBER and kb in NUMBER) or ka == kb == STRING:
            return bool(op(plain(a), plain(b)))
        raise ExpressionRuntimeError(f"cannot compare {ka} with {kb} using '{symbol}'")

    return apply


less = _ordering("<", operator.lt)
less_equal = _ordering("<=", operator.le)
greater = _ordering(">", operator.gt)
greater_equal = _ordering(">=", operator.ge)


def member(item: Value, container: Value) -> bool:
    """``item in container``: an equal item of a list, a substring, or a key of a mapping."""
    kind = kind_of(container)
    if kind == LIST:
        return any(equal(item, candidate) for candidate in container)
    if kind in (STRING, MAPPING):
        if kind_of(item) != STRING:
            raise ExpressionRuntimeError(
                f"'in' on a {kind} needs a string on the left, not {kind_of(item)}"
            )
        return plain(item) in container
    raise ExpressionRuntimeError(f"'in' needs a list, string or mapping on the right, not {kind}")


def not_member(item: Value, container: Value) -> bool:
    return not member(item, container)


COMPARISONS: dict[str, Callable[[Value, Value], bool]] = {
    "==": equal,
    "!=": not_equal,
    "<": less,
    "<=": less_equal,
    ">": greater,
    ">=": greater_equal,
    "in": member,
    "not in": not_member,
}


# -------------------------------------------------------- static kind rules


def _binary_kind(op: str, a: str, b: str) -> Kinds:
    if a in NUMBER and b in NUMBER:
        if op == "/":
            return frozenset({FLOAT})
        if a == b == INT:
            # A negative integer exponent makes a float.
            return NUMBER if op == "**" else frozenset({INT})
        return frozenset({FLOAT})
    if (op == "+" and a == b == STRING) or (op == "*" and {a, b} == {STRING, INT}):
        return frozenset({STRING})
    return frozenset()


def binary_kinds(op: str, left: Kinds, right: Kinds) -> Kinds:
    """The kinds ``left op right`` can produce; empty when no combination is defined."""
    return frozenset().union(*(_binary_kind(op, a, b) for a in left for b in right))


def unary_kinds(op: str, operand: Kinds) -> Kinds:
    return operand & NUMBER


def _compare_kind_ok(op: str, a: str, b: str) -> bool:
    if op in ("==", "!="):
        return True
    if op in ("in", "not in"):
        return b == LIST or (b in (STRING, MAPPING) and a == STRING)
    return (a in NUMBER and b in NUMBER) or a == b == STRING


def compare_allowed(op: str, left: Kinds, right: Kinds) -> bool:
    """Whether ``left op right`` is defined for at least one pair of kinds."""
    return any(_compare_kind_ok(op, a, b) for a in left for b in right)
