"""The expression language's functions: results, documentation, and run-time errors."""

from __future__ import annotations

import pytest

from tests.rules.expr_support import CLIMATE, EVENT, event, run, runtime_error
from tidegate.event import Value
from tidegate.rules import expr
from tidegate.rules.expr import FUNCTIONS

FUNCTION_CASES: list[tuple[str, object]] = [
    ("abs(-3)", 3),
    ("abs(-2.5)", 2.5),
    ("min(3, 1.5, 2)", 1.5),
    ("min([4, 2])", 2),
    ("min('b', 'a')", "a"),
    ("max(3, 1.5, 2)", 3),
    ("max(['a', 'c', 'b'])", "c"),
    ("round(2.5)", 2),
    ("round(3.5)", 4),
    ("round(-2.7)", -3),
    ("round(3.14159, 2)", 3.14),
    ("round(1234, -2)", 1200),
    ("round(5, -10)", 0),
    ("clamp(15, 0, 10)", 10),
    ("clamp(-1, 0, 10)", 0),
    ("clamp(5.5, 0, 10)", 5.5),
    ("int(3.9)", 3),
    ("int(-3.9)", -3),
    ("int(' 42 ')", 42),
    ("int(true)", 1),
    ("float(2)", 2.0),
    ("float('2.5')", 2.5),
    ("float(false)", 0.0),
    ("str('a')", "a"),
    ("str(1.5)", "1.5"),
    ("str(true)", "true"),
    ("str(null)", "null"),
    ("str([1, 'a'])", '[1, "a"]'),
    ("bool(0)", False),
    ("bool('x')", True),
    ("bool([])", False),
    ("len('abc')", 3),
    ("len([1, 2])", 2),
    ("lower('AbC')", "abc"),
    ("upper('AbC')", "ABC"),
    ("startswith('sensor-1', 'sensor')", True),
    ("startswith('sensor-1', 'x')", False),
    ("endswith('sensor-1', '-1')", True),
    ("contains('abc', 'b')", True),
    ("contains([1, 2], 3)", False),
    ("sqrt(16)", 4.0),
    ("log(1)", 0.0),
    ("log(8, 2)", 3.0),
    ("exp(0)", 1.0),
    ("floor(2.7)", 2),
    ("floor(-2.2)", -3),
    ("ceil(2.2)", 3),
    ("ceil(5)", 5),
    ("coalesce(null, null, 3)", 3),
    ("coalesce(null)", None),
    ("coalesce(0, 1)", 0),
    ("is_number(1.5)", True),
    ("is_number(true)", False),
    ("is_number('1')", False),
]


@pytest.mark.parametrize(("text", "expected"), FUNCTION_CASES)
def test_functions(text: str, expected: object) -> None:
    result = run(text)
    assert result == expected
    assert type(result) is type(expected)


def test_every_function_is_tested_and_documented() -> None:
    tested = {text.split("(", 1)[0] for text, _ in FUNCTION_CASES}
    assert tested == set(FUNCTIONS)
    docs = expr.__doc__ or ""
    for function in FUNCTIONS.values():
        assert f"``{function.name}(" in docs, function.name


def test_functions_on_event_values() -> None:
    assert run("round(value, 1)", event(21.46)) == 21.5
    assert run("lower(tags.room) + '-' + str(seq)") == "a-7"
    assert run("clamp(value.humidity, 0, 40)", CLIMATE) == 40
    assert run("len(value)", CLIMATE) == 4
    assert run("contains(value, 'ok')", CLIMATE) is True


def test_coalesce_does_not_evaluate_later_arguments() -> None:
    # value.humidity fails on a number value, but it is never reached.
    assert run("coalesce(tags.room, value.humidity)") == "a"
    assert runtime_error("coalesce(tags.zone, value.humidity)", EVENT)


@pytest.mark.parametrize(
    ("text", "value", "message"),
    [
        ("sqrt(value)", -1, "sqrt() needs a number >= 0"),
        ("log(value)", 0, "log() needs a number > 0"),
        ("log(8, value)", 1, "base"),
        ("exp(value)", 1000, "exp()"),
        ("int(value)", "4.5x", "int() cannot read"),
        ("float(value)", "nan", "not a finite number"),
        ("float(value)", "1e999", "not a finite number"),
        ("float(value)", "x", "float() cannot read"),
        ("int(value)", 1e300, "out of range"),
        ("floor(value)", 1e300, "out of range"),
        ("round(value)", 1e300, "out of range"),
        ("round(1, value)", 1.5, "round() needs an int number of digits"),
        ("min(value, 1)", "a", "all numbers or all strings"),
        ("max(value)", 1, "needs a list"),
        ("clamp(value, 10, 0)", 1, "lo <= hi"),
        ("lower(value)", 1, "lower() needs a string, not int"),
        ("len(value)", 1, "len() needs a string, list or mapping"),
        ("abs(value)", "x", "abs() needs a number, not string"),
        ("str([value, value])", "a" * 6000, "longer than"),
        ("startswith(value, 'a')", 1, "startswith() needs a string"),
    ],
)
def test_function_errors_at_run_time(text: str, value: Value, message: str) -> None:
    assert message in str(runtime_error(text, event(value)))
