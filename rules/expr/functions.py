"""The functions an expression may call (``FUNCTIONS``): signatures, checks and the rest.

Each ``Function`` states the kinds each argument accepts, so the compiler can
refuse ``lower(seq)`` at load; each implementation still checks its arguments
at run time, as the operators do, and raises only ``ExpressionRuntimeError``.
The number functions are in ``numeric``. The user-facing list is in the
package's documentation (``tidegate.rules.expr``); a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from tidegate.rules.expr import numeric
from tidegate.rules.expr.errors import ExpressionRuntimeError
from tidegate.rules.expr.operators import member
from tidegate.rules.expr.values import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    LIST,
    MAPPING,
    NUMBER,
    STRING,
    Kinds,
    Value,
    describe,
    kind_of,
    plain,
    render,
)


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


def _string(function: str, value: Value) -> str:
    if type(value) is str:
        return value
    if kind_of(value) == STRING:
        return str(value)
    raise ExpressionRuntimeError(f"{function}() needs a string, not {kind_of(value)}")


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
        return pick(plain(item) for item in items)

    return apply


def _len(x: Value) -> int:
    if kind_of(x) not in (STRING, LIST, MAPPING):
        raise ExpressionRuntimeError(f"len() needs a string, list or mapping, not {kind_of(x)}")
    return len(x)


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
            Function(
                "abs",
                "abs(x)",
                "absolute value of a number",
                numeric.absolute,
                (_NUM,),
                1,
                result=_NUM,
            ),
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
                numeric.rounded,
                (_NUM, frozenset({INT})),
                1,
                result=_NUM,
            ),
            Function(
                "clamp",
                "clamp(x, lo, hi)",
                "x limited to the range lo..hi",
                numeric.clamp,
                (_NUM, _NUM, _NUM),
                3,
                result=_NUM,
            ),
            Function(
                "int",
                "int(x)",
                "number truncated toward zero; bool as 0/1; a string of digits",
                numeric.to_int,
                (_NUM | _STR | {BOOL},),
                1,
                result=frozenset({INT}),
            ),
            Function(
                "float",
                "float(x)",
                "number, bool or numeric string as a float",
                numeric.to_float,
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
                numeric.sqrt,
                (_NUM,),
                1,
                result=frozenset({FLOAT}),
            ),
            Function(
                "log",
                "log(x[, base])",
                "natural logarithm, or logarithm to base",
                numeric.log,
                (_NUM, _NUM),
                1,
                result=frozenset({FLOAT}),
            ),
            Function(
                "exp",
                "exp(x)",
                "e to the power x",
                numeric.exp,
                (_NUM,),
                1,
                result=frozenset({FLOAT}),
            ),
            Function(
                "floor",
                "floor(x)",
                "largest int <= x",
                numeric.floor,
                (_NUM,),
                1,
                result=frozenset({INT}),
            ),
            Function(
                "ceil",
                "ceil(x)",
                "smallest int >= x",
                numeric.ceil,
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
