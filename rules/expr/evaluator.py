"""Run-time semantics of the expression language: value kinds, operators, functions.

Values are plain data: int, float, bool, str, None (``null``), list and
mapping (dict). Every operation here checks the kinds of its operands itself
and raises ``ExpressionRuntimeError`` for anything it does not define, so no
Python ``TypeError``, ``ZeroDivisionError`` or ``OverflowError`` escapes, and
no Python behaviour the language does not promise is reachable (``'%s' % x``
formatting, list repetition, ``True + 1``). Results are bounded: integers stay
within ±2**63, floats stay finite, strings built here stay under
``MAX_STRING`` characters, and a power is refused *before* it is computed when
its result could not fit.

Each operation starts with a fast path on exact types (``type(x) is int``),
because ``bool`` is a subclass of ``int`` and is not a number here; other
subclasses (a numpy float, an IntEnum) take a slower path that converts them
to the plain type first.

The static side (``binary_kinds``, ``compare_allowed``, ``Function.params``)
describes the same rules on sets of kinds, so the compiler can refuse
``name * 2.5`` at load; tests check that both sides agree.
"""

from __future__ import annotations

import json
import math
import operator
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias

from tidegate.errors import TidegateError

# Values are dynamically typed by design: every operation below inspects its
# operands' types itself, so they are annotated ``Any``.
Value: TypeAlias = Any


class ExpressionRuntimeError(TidegateError):
    """An expression could not be evaluated for one event.

    The rule stage counts these and drops or dead-letters the event; they are
    the only exception ``Expression.evaluate`` raises.
    """


# --------------------------------------------------------------------- kinds

Kinds: TypeAlias = frozenset[str]
INT, FLOAT, BOOL, STRING, NULL, LIST, MAPPING = (
    "int",
    "float",
    "bool",
    "string",
    "null",
    "list",
    "mapping",
)
NUMBER: Kinds = frozenset({INT, FLOAT})
SCALAR: Kinds = frozenset({INT, FLOAT, BOOL, STRING, NULL})
ANY: Kinds = SCALAR | {LIST, MAPPING}

MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
MAX_FLOAT = sys.float_info.max
MAX_STRING = 10_000
"""Longest string an operation may build (concatenation, repetition, str())."""

_KIND_OF_TYPE: dict[type, str] = {
    int: INT,
    float: FLOAT,
    bool: BOOL,
    str: STRING,
    type(None): NULL,
    list: LIST,
    dict: MAPPING,
}


def kind_of(value: Value) -> str:
    kind = _KIND_OF_TYPE.get(type(value))
    if kind is not None:
        return kind
    for base, base_kind in (
        (bool, BOOL),
        (int, INT),
        (float, FLOAT),
        (str, STRING),
        (list, LIST),
        (tuple, LIST),
        (Mapping, MAPPING),
    ):
        if isinstance(value, base):
            return base_kind
    raise ExpressionRuntimeError(f"unsupported value of type {type(value).__name__}")


def describe(kinds: Kinds) -> str:
    """'int', 'string or null', ...: kinds in a stable order for messages."""
    ordered = [k for k in (INT, FLOAT, BOOL, STRING, NULL, LIST, MAPPING) if k in kinds]
    return " or ".join(ordered) if ordered else "nothing"


def _plain(value: Value) -> Value:
    """The value as its exact plain type (a numpy float becomes a float), or itself."""
    kind = kind_of(value)
    if type(value) in _KIND_OF_TYPE:
        return value
    if kind == INT:
        return int(value)
    if kind == FLOAT:
        return float(value)
    if kind == STRING:
        return str(value)
    if kind == LIST:
        return list(value)
    if kind == MAPPING:
        return dict(value)
    return value


def _is_plain_number(value: Value) -> bool:
    return type(value) is int or type(value) is float


# ------------------------------------------------------------------ results


def _int_result(result: int, what: str) -> int:
    if MIN_INT <= result <= MAX_INT:
        return result
    raise ExpressionRuntimeError(f"{what}: integer result is out of range (beyond ±2**63)")


def _number_result(result: int | float, what: str) -> int | float:
    if type(result) is int:
        return _int_result(result, what)
    # The chained comparison is also false for NaN.
    if -MAX_FLOAT <= result <= MAX_FLOAT:
        return result
    raise ExpressionRuntimeError(f"{what}: result is not a finite number")


def _string_result(result: str, what: str) -> str:
    if len(result) <= MAX_STRING:
        return result
    raise ExpressionRuntimeError(f"{what}: string result is longer than {MAX_STRING} characters")


# ---------------------------------------------------------------- operators

BinaryOp: TypeAlias = Callable[[Value, Value], Value]


def _operand_error(symbol: str, a: Value, b: Value) -> ExpressionRuntimeError:
    return ExpressionRuntimeError(f"cannot apply '{symbol}' to {kind_of(a)} and {kind_of(b)}")


def _retry_plain(op: BinaryOp, symbol: str, a: Value, b: Value) -> Value:
    """Run ``op`` again on plain copies of subclass operands, or refuse the operand kinds."""
    plain_a, plain_b = _plain(a), _plain(b)
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
            # Inlined _number_result: this is the hot path of every 'set:' formula.
            if type(result) is int:
                if MIN_INT <= result <= MAX_INT:
                    return result
            elif -MAX_FLOAT <= result <= MAX_FLOAT:
                return result
            return _number_result(result, what)
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
    if not (_is_plain_number(a) and _is_plain_number(b)):
        return _retry_plain(power, "**", a, b)
    if a == 0 and b < 0:
        raise ExpressionRuntimeError("'**': zero to a negative power")
    if type(a) is int and type(b) is int and b > 0 and abs(a) > 1:
        # |a| >= 2**(bits-1), so |a|**b >= 2**((bits-1)*b): refuse 9**9**9 before computing
        # it. What passes is below 2**(bits*b) <= 2**126: cheap, and range-checked after.
        if (abs(a).bit_length() - 1) * b > 63:
            raise ExpressionRuntimeError("'**': integer result is out of range (beyond ±2**63)")
        return _int_result(a**b, "'**'")
    if a < 0 and not (type(b) is int or float(b).is_integer()):
        raise ExpressionRuntimeError("'**': a negative number to a fractional power")
    try:
        result = a**b if type(a) is int and type(b) is int else float(a) ** float(b)
    except (ArithmeticError, ValueError) as exc:
        raise ExpressionRuntimeError(f"'**': {exc}") from None
    return _number_result(result, "'**'")


def negate(a: Value) -> Value:
    if _is_plain_number(a):
        return _number_result(-a, "'-'")
    plain = _plain(a)
    if plain is a or not _is_plain_number(plain):
        raise ExpressionRuntimeError(f"cannot apply '-' to {kind_of(a)}")
    return negate(plain)


def unary_plus(a: Value) -> Value:
    if _is_plain_number(a):
        return a
    plain = _plain(a)
    if plain is a or not _is_plain_number(plain):
        raise ExpressionRuntimeError(f"cannot apply '+' to {kind_of(a)}")
    return plain


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
    return bool(_plain(a) == _plain(b))


def not_equal(a: Value, b: Value) -> bool:
    return not equal(a, b)


def _ordering(symbol: str, op: Callable[[Any, Any], bool]) -> Callable[[Value, Value], bool]:
    """An ordering comparison: two numbers, or two strings."""

    def apply(a: Value, b: Value) -> bool:
        if (_is_plain_number(a) and _is_plain_number(b)) or (type(a) is str and type(b) is str):
            return op(a, b)
        ka, kb = kind_of(a), kind_of(b)
        if (ka in NUMBER and kb in NUMBER) or ka == kb == STRING:
            return bool(op(_plain(a), _plain(b)))
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
        return _plain(item) in container
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


# --------------------------------------------------------- function library


@dataclass(frozen=True, slots=True)
class Function:
    """One library function: its signature for docs and checks, and its implementation."""

    name: str
    signature: str
    summary: str
    impl: Callable[..., Value]
    params: tuple[Kinds, ...]
    """Kinds accepted by each positional parameter."""
    required: int
    rest: Kinds | None = None
    """Kinds accepted by further arguments; None when the function takes no more."""
    result: Kinds = ANY

    def accepts(self, index: int) -> Kinds:
        if index < len(self.params):
            return self.params[index]
        return self.rest if self.rest is not None else frozenset()

    @property
    def arity(self) -> str:
        most = len(self.params)
        if self.rest is not None:
            return f"at least {self.required} argument{'s' if self.required != 1 else ''}"
        if most == self.required:
            return f"{most} argument{'s' if most != 1 else ''}"
        return f"{self.required} to {most} arguments"

    def takes(self, count: int) -> bool:
        return count >= self.required and (self.rest is not None or count <= len(self.params))


def _number(function: str, value: Value) -> int | float:
    if _is_plain_number(value):
        return value  # type: ignore[no-any-return]
    plain = _plain(value)
    if _is_plain_number(plain):
        return plain  # type: ignore[no-any-return]
    raise ExpressionRuntimeError(f"{function}() needs a number, not {kind_of(value)}")


def _string(function: str, value: Value) -> str:
    if type(value) is str:
        return value
    if kind_of(value) == STRING:
        return str(value)
    raise ExpressionRuntimeError(f"{function}() needs a string, not {kind_of(value)}")


def _abs(x: Value) -> int | float:
    return _number_result(abs(_number("abs", x)), "abs()")


def _extreme(name: str, pick: Callable[..., Value]) -> Callable[..., Value]:
    def apply(*args: Value) -> Value:
        items = args
        if len(args) == 1:
            if kind_of(args[0]) != LIST:
                raise ExpressionRuntimeError(f"{name}() of one argument needs a list")
            items = tuple(args[0])
        if not items:
            raise ExpressionRuntimeError(f"{name}() of an empty list")
        kinds = {kind_of(item) for item in items}
        if not (kinds <= NUMBER or kinds == {STRING}):
            raise ExpressionRuntimeError(
                f"{name}() needs all numbers or all strings, got {describe(frozenset(kinds))}"
            )
        return pick(_plain(item) for item in items)

    return apply


def _round(x: Value, ndigits: Value = None) -> int | float:
    number = _number("round", x)
    if ndigits is None:
        if type(number) is float and not math.isfinite(number):
            raise ExpressionRuntimeError("round() of a non-finite number")
        return _int_result(round(number), "round()")
    if kind_of(ndigits) != INT:
        raise ExpressionRuntimeError(
            f"round() needs an int number of digits, not {kind_of(ndigits)}"
        )
    # Beyond these, rounding is the identity or zero anyway; bounding ndigits keeps
    # round(5, -10**18) from computing 10**(10**18).
    digits = max(-400, min(400, int(ndigits)))
    return _number_result(round(number, digits), "round()")


def _clamp(x: Value, lo: Value, hi: Value) -> int | float:
    number, low, high = _number("clamp", x), _number("clamp", lo), _number("clamp", hi)
    if low > high:
        raise ExpressionRuntimeError(f"clamp() needs lo <= hi, got {low} > {high}")
    return low if number < low else high if number > high else number


def _int(x: Value) -> int:
    kind = kind_of(x)
    if kind == BOOL:
        return int(x)
    if kind == STRING:
        try:
            return _int_result(int(str(x)), "int()")
        except ValueError:
            raise ExpressionRuntimeError(f"int() cannot read {str(x)[:40]!r}") from None
    number = _number("int", x)
    if type(number) is float and not math.isfinite(number):
        raise ExpressionRuntimeError("int() of a non-finite number")
    return _int_result(int(number), "int()")


def _float(x: Value) -> float:
    kind = kind_of(x)
    if kind == BOOL:
        return float(x)
    try:
        result = float(str(x)) if kind == STRING else float(_number("float", x))
    except (ValueError, OverflowError):
        raise ExpressionRuntimeError(f"float() cannot read {str(x)[:40]!r}") from None
    if not math.isfinite(result):
        raise ExpressionRuntimeError(f"float() of {str(x)[:40]!r} is not a finite number")
    return result


def render(value: Value) -> str:
    """A value as text: strings as they are, everything else as JSON (true, null, [1, "a"])."""
    if type(value) is str:
        return value
    if kind_of(value) == STRING:
        return str(value)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ExpressionRuntimeError(f"str() cannot render this value: {exc}") from None
    return _string_result(text, "str()")


def _len(x: Value) -> int:
    if kind_of(x) not in (STRING, LIST, MAPPING):
        raise ExpressionRuntimeError(f"len() needs a string, list or mapping, not {kind_of(x)}")
    return len(x)


def _math(
    name: str, op: Callable[[float], float], valid: Callable[[float], bool], why: str
) -> Callable[[Value], float]:
    def apply(x: Value) -> float:
        number = _number(name, x)
        if not valid(number):
            raise ExpressionRuntimeError(f"{name}() {why}, got {number}")
        try:
            return _number_result(op(number), f"{name}()")
        except (OverflowError, ValueError) as exc:
            raise ExpressionRuntimeError(f"{name}(): {exc}") from None

    return apply


def _log(x: Value, base: Value = None) -> float:
    number = _number("log", x)
    if not number > 0:
        raise ExpressionRuntimeError(f"log() needs a number > 0, got {number}")
    try:
        if base is None:
            return math.log(number)
        b = _number("log", base)
        if not b > 0 or b == 1:
            raise ExpressionRuntimeError(f"log() needs a base > 0 and != 1, got {b}")
        return math.log(number, b)
    except (OverflowError, ValueError) as exc:
        raise ExpressionRuntimeError(f"log(): {exc}") from None


def _rounding(name: str, op: Callable[[float], int]) -> Callable[[Value], int]:
    def apply(x: Value) -> int:
        number = _number(name, x)
        if type(number) is int:
            return _int_result(number, f"{name}()")
        if not math.isfinite(number):
            raise ExpressionRuntimeError(f"{name}() of a non-finite number")
        return _int_result(op(number), f"{name}()")

    return apply


def _affix(name: str, test: Callable[[str, str], bool]) -> Callable[[Value, Value], bool]:
    def apply(text: Value, part: Value) -> bool:
        return test(_string(name, text), _string(name, part))

    return apply


def _coalesce(*args: Value) -> Value:
    return next((arg for arg in args if arg is not None), None)


def _is_number(x: Value) -> bool:
    return kind_of(x) in NUMBER


_NUM, _STR, _ANY = NUMBER, frozenset({STRING}), ANY
_TEXT_LIKE = frozenset({STRING, LIST, MAPPING})

FUNCTIONS: Mapping[str, Function] = MappingProxyType(
    {
        f.name: f
        for f in (
            Function("abs", "abs(x)", "absolute value of a number", _abs, (_NUM,), 1, result=_NUM),
            Function(
                "min",
                "min(a, b, ...) or min(list)",
                "smallest of numbers or of strings",
                _extreme("min", min),
                (_NUM | _STR | {LIST},),
                1,
                rest=_NUM | _STR,
            ),
            Function(
                "max",
                "max(a, b, ...) or max(list)",
                "largest of numbers or of strings",
                _extreme("max", max),
                (_NUM | _STR | {LIST},),
                1,
                rest=_NUM | _STR,
            ),
            Function(
                "round",
                "round(x[, ndigits])",
                "round half to even; an int without ndigits, else the type of x",
                _round,
                (_NUM, frozenset({INT})),
                1,
                result=_NUM,
            ),
            Function(
                "clamp",
                "clamp(x, lo, hi)",
                "x limited to the range lo..hi",
                _clamp,
                (_NUM, _NUM, _NUM),
                3,
                result=_NUM,
            ),
            Function(
                "int",
                "int(x)",
                "number truncated toward zero; bool as 0/1; a string of digits",
                _int,
                (_NUM | _STR | {BOOL},),
                1,
                result=frozenset({INT}),
            ),
            Function(
                "float",
                "float(x)",
                "number, bool or numeric string as a float",
                _float,
                (_NUM | _STR | {BOOL},),
                1,
                result=frozenset({FLOAT}),
            ),
            Function(
                "str",
                "str(x)",
                "strings unchanged, anything else as JSON text",
                render,
                (_ANY,),
                1,
                result=_STR,
            ),
            Function(
                "bool",
                "bool(x)",
                "truthiness: false for false, null, 0, '' and []",
                bool,
                (_ANY,),
                1,
                result=frozenset({BOOL}),
            ),
            Function(
                "len",
                "len(x)",
                "length of a string, list or mapping",
                _len,
                (_TEXT_LIKE,),
                1,
                result=frozenset({INT}),
            ),
            Function(
                "lower",
                "lower(s)",
                "the string in lower case",
                lambda s: _string("lower", s).lower(),
                (_STR,),
                1,
                result=_STR,
            ),
            Function(
                "upper",
                "upper(s)",
                "the string in upper case",
                lambda s: _string("upper", s).upper(),
                (_STR,),
                1,
                result=_STR,
            ),
            Function(
                "startswith",
                "startswith(s, prefix)",
                "whether string s starts with prefix",
                _affix("startswith", str.startswith),
                (_STR, _STR),
                2,
                result=frozenset({BOOL}),
            ),
            Function(
                "endswith",
                "endswith(s, suffix)",
                "whether string s ends with suffix",
                _affix("endswith", str.endswith),
                (_STR, _STR),
                2,
                result=frozenset({BOOL}),
            ),
            Function(
                "contains",
                "contains(container, item)",
                "same as: item in container",
                lambda container, item: member(item, container),
                (_TEXT_LIKE, _ANY),
                2,
                result=frozenset({BOOL}),
            ),
            Function(
                "sqrt",
                "sqrt(x)",
                "square root of a number >= 0",
                _math("sqrt", math.sqrt, lambda x: x >= 0, "needs a number >= 0"),
                (_NUM,),
                1,
                result=frozenset({FLOAT}),
            ),
            Function(
                "log",
                "log(x[, base])",
                "natural logarithm, or logarithm to base",
                _log,
                (_NUM, _NUM),
                1,
                result=frozenset({FLOAT}),
            ),
            Function(
                "exp",
                "exp(x)",
                "e to the power x",
                _math("exp", math.exp, lambda x: True, ""),
                (_NUM,),
                1,
                result=frozenset({FLOAT}),
            ),
            Function(
                "floor",
                "floor(x)",
                "largest int <= x",
                _rounding("floor", math.floor),
                (_NUM,),
                1,
                result=frozenset({INT}),
            ),
            Function(
                "ceil",
                "ceil(x)",
                "smallest int >= x",
                _rounding("ceil", math.ceil),
                (_NUM,),
                1,
                result=frozenset({INT}),
            ),
            Function(
                "coalesce",
                "coalesce(a, b, ...)",
                "the first argument that is not null (later ones are not evaluated)",
                _coalesce,
                (_ANY,),
                1,
                rest=_ANY,
            ),
            Function(
                "is_number",
                "is_number(x)",
                "whether x is an int or a float (not a bool)",
                _is_number,
                (_ANY,),
                1,
                result=frozenset({BOOL}),
            ),
        )
    }
)
