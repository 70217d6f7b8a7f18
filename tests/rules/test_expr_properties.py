"""Properties of the expression language: static kinds agree with run time; random input."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rules.expr_support import CLIMATE, EVENT, event
from tidegate.rules.expr import ExpressionError, ExpressionRuntimeError, compile_expression
from tidegate.rules.expr.operators import ARITHMETIC, COMPARISONS, binary_kinds, compare_allowed
from tidegate.rules.expr.values import kind_of

# ----------------------------------------------- kinds agree with run time

SAMPLES: list[Any] = [0, 3, -2, 2.5, -0.5, True, False, "", "ab", None, [], [1], {}, {"a": 1}]


@pytest.mark.parametrize("op", sorted(ARITHMETIC))
def test_arithmetic_kinds_predict_run_time(op: str) -> None:
    for a in SAMPLES:
        for b in SAMPLES:
            predicted = binary_kinds(op, frozenset({kind_of(a)}), frozenset({kind_of(b)}))
            try:
                result = ARITHMETIC[op](a, b)
            except ExpressionRuntimeError:
                # Only operand kinds the table refuses, or a bad value (zero, negative base).
                assert not predicted or b == 0 or (op == "**" and a <= 0), (op, a, b)
                continue
            assert kind_of(result) in predicted, (op, a, b)


@pytest.mark.parametrize("op", sorted(COMPARISONS))
def test_comparison_kinds_predict_run_time(op: str) -> None:
    for a in SAMPLES:
        for b in SAMPLES:
            allowed = compare_allowed(op, frozenset({kind_of(a)}), frozenset({kind_of(b)}))
            try:
                result = COMPARISONS[op](a, b)
            except ExpressionRuntimeError:
                assert not allowed, (op, a, b)
                continue
            assert allowed, (op, a, b)
            assert type(result) is bool


# ---------------------------------------------------------- property tests

_TOKENS = [
    "value", "tags", "name", ".", "room", "humidity", "__class__", "(", ")", "[", "]", ",",
    "+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "in", "not",
    "and", "or", "if", "else", "lambda", "for", ":", "=", "{", "}", "1", "0", "2.5", "1e308",
    "9", "'a'", '"b"', "'", "\\", "true", "null", "abs", "min", "round", "coalesce", "len",
    "str", "lower", "sqrt", "log", "x",
]  # fmt: skip

_EVENTS = [EVENT, CLIMATE, event("text"), event(0), event(True), event(-(2**63))]

random_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(_TOKENS), max_size=30).map(" ".join),
    st.lists(st.sampled_from(_TOKENS), max_size=30).map("".join),
)


# derandomize: the same examples on every run, so CI is deterministic; a longer
# exploratory run (max_examples=30000 each) found nothing beyond the '¹' case below.
@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(random_text)
def test_random_text_only_ever_raises_expression_errors(text: str) -> None:
    try:
        compiled = compile_expression(text)
    except ExpressionError as error:
        assert "internal error" not in error.message
        assert error.line >= 1 and error.column >= 1
        return
    for sample in _EVENTS:
        try:
            result = compiled.evaluate(sample)
        except ExpressionRuntimeError as error:
            assert "internal error" not in str(error)
            continue
        kind_of(result)  # a plain value


# Random arithmetic trees, checked against Python's own operators with the
# language's bounds applied by a separate, simpler rule set.

Tree = tuple[Any, ...]
_INT_BOUND = 2**63
_REFERENCE_OPS: Mapping[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}


class _Refused(Exception):
    pass


def _bounded(result: Any) -> Any:
    if isinstance(result, complex):
        raise _Refused
    if isinstance(result, int) and not -_INT_BOUND <= result < _INT_BOUND:
        raise _Refused
    if isinstance(result, float) and not math.isfinite(result):
        raise _Refused
    return result


def _reference(tree: Tree) -> Any:
    match tree:
        case ("num", number) | ("field", _, number):
            return number
        case ("neg", operand):
            return _bounded(-_reference(operand))
        case ("bin", op, left, right):
            a, b = _reference(left), _reference(right)
            if op == "**" and isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > 64:
                raise _Refused
            try:
                return _bounded(_REFERENCE_OPS[op](a, b))
            except (ZeroDivisionError, OverflowError) as exc:
                raise _Refused from exc
    raise AssertionError(tree)


def _render(tree: Tree) -> str:
    match tree:
        case ("num", number):
            return f"({number!r})"
        case ("field", key, _):
            return f"value.{key}"
        case ("neg", operand):
            return f"(-{_render(operand)})"
        case ("bin", op, left, right):
            return f"({_render(left)} {op} {_render(right)})"
    raise AssertionError(tree)


def _fields(tree: Tree) -> Iterator[tuple[str, Any]]:
    if tree[0] == "field":
        yield tree[1], tree[2]
    for child in tree[1:]:
        if isinstance(child, tuple):
            yield from _fields(child)


_numbers = st.one_of(
    st.integers(-20, 20),
    st.integers(-(2**62), 2**62),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)
_leaves = st.one_of(
    _numbers.map(lambda n: ("num", n)),
    st.tuples(st.just("field"), st.sampled_from("abcdef"), _numbers),
)
trees = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        inner.map(lambda t: ("neg", t)),
        st.tuples(st.just("bin"), st.sampled_from(sorted(_REFERENCE_OPS)), inner, inner),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(trees)
def test_random_arithmetic_agrees_with_a_reference(tree: Tree) -> None:
    values = dict(_fields(tree))  # a key drawn twice keeps its last number everywhere
    tree = _with_values(tree, values)
    text = _render(tree)
    try:
        expected = _reference(tree)
    except _Refused:
        with pytest.raises((ExpressionError, ExpressionRuntimeError)):
            compile_expression(text).evaluate(event(values))
        return
    result = compile_expression(text).evaluate(event(values))
    assert result == expected
    assert type(result) is type(expected)


def _with_values(tree: Tree, values: dict[str, Any]) -> Tree:
    if tree[0] == "field":
        return ("field", tree[1], values[tree[1]])
    return tuple(_with_values(c, values) if isinstance(c, tuple) else c for c in tree)
