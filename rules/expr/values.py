"""The values an expression computes with: their kinds, their limits, and their text form.

Values are plain data: int, float, bool, str, None (``null``), list and
mapping (dict). Results are bounded: integers stay within ±2**63, floats stay
finite, and strings built by an operation stay under ``MAX_STRING``
characters; the ``*_result`` checks below enforce that, raising
``ExpressionRuntimeError`` rather than returning a slow or huge value.

Operations test exact types first (``type(x) is int``), because ``bool`` is a
subclass of ``int`` and is not a number here; other subclasses (a numpy
float, an IntEnum) are converted to the plain type by ``plain`` first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, TypeAlias

from tidegate.rules.expr.errors import ExpressionRuntimeError

# Values are dynamically typed by design: every operation inspects its
# operands' types itself, so they are annotated ``Any``.
Value: TypeAlias = Any

Kinds: TypeAlias = frozenset[str]
"""A set of value kinds: what the compiler knows a part of an expression can produce."""

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


def plain(value: Value) -> Value:
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


def is_plain_number(value: Value) -> bool:
    return type(value) is int or type(value) is float


# ------------------------------------------------------------------ results


def int_result(result: int, what: str) -> int:
    if MIN_INT <= result <= MAX_INT:
        return result
    raise ExpressionRuntimeError(f"{what}: integer result is out of range (beyond ±2**63)")


def number_result(result: int | float, what: str) -> int | float:
    if type(result) is int:
        return int_result(result, what)
    # The chained comparison is also false for NaN.
    if -MAX_FLOAT <= result <= MAX_FLOAT:
        return result
    raise ExpressionRuntimeError(f"{what}: result is not a finite number")


def string_result(result: str, what: str) -> str:
    if len(result) <= MAX_STRING:
        return result
    raise ExpressionRuntimeError(f"{what}: string result is longer than {MAX_STRING} characters")


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
    return string_result(text, "str()")
