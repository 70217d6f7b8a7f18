"""Expression errors: what is refused at load (where, and why), and what fails one event."""

from __future__ import annotations

from typing import Any

import pytest

from tests.rules.expr_support import event, load_error, runtime_error
from tidegate.errors import TidegateError
from tidegate.event import Value
from tidegate.rules.expr import MAX_STRING, ExpressionRuntimeError, compile_expression

# ------------------------------------------------------------- load errors


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("vlaue > 30", 1, 1, "unknown name 'vlaue' (did you mean 'value'?)"),
        ("value > 30 and sorce == 'x'", 1, 16, "did you mean 'source'?"),
        ("value > 30 and\n    nmae == 'x'", 2, 5, "did you mean 'name'?"),
        ("'é' + vlue", 1, 7, "did you mean 'value'?"),  # columns count characters
        ("zzz", 1, 1, "the event's fields are value, name"),
        ("abz(value)", 1, 1, "unknown function 'abz' (did you mean 'abs'?)"),
        ("1 + rond(value)", 1, 5, "did you mean 'round'?"),
        ("frobnicate(1)", 1, 1, "the functions are abs, min"),
        ("value(1)", 1, 1, "'value' is not a function"),
        ("1 + abs", 1, 5, "'abs' is a function; call it as abs(...)"),
        ("round(1, 2, 3)", 1, 1, "round() takes 1 to 2 arguments, got 3"),
        ("clamp(1)", 1, 1, "clamp() takes 3 arguments, got 1"),
        ("abs()", 1, 1, "abs() takes 1 argument, got 0"),
        ("min()", 1, 1, "min() takes at least 1 argument, got 0"),
        ("'a' - 1", 1, 5, "cannot apply '-' to string and int"),
        ("name * 2.5", 1, 6, "cannot apply '*' to string and float"),
        ("[1] * 3", 1, 5, "cannot apply '*' to list and int"),
        ("-name", 1, 1, "cannot apply '-' to string"),
        ("true + 1", 1, 6, "cannot apply '+' to bool and int"),
        ("tags.room < 3", 1, 11, "cannot compare string or null < int"),
        ("1 in 2", 1, 3, "cannot test whether int in int"),
        ("value in 3", 1, 7, "cannot test whether int or float or bool or string or mapping in"),
        ("1 in value", 1, 3, "cannot test whether int in int or float"),
        ("lower(seq)", 1, 7, "lower() argument 1 must be string, not int"),
        ("round(value, 'x')", 1, 14, "round() argument 2 must be int"),
        ("1 / 0", 1, 3, "division by zero"),
        ("value + 9 ** 9 ** 9", 1, 11, "out of range"),
        ("sqrt(-1)", 1, 1, "sqrt() needs a number >= 0"),
        ("name.x", 1, 1, "'name' has no keys"),
        ("valu.x", 1, 1, "did you mean 'value'?"),
        ("value.humidity.x", 1, 15, "'.' may only follow value or tags"),
        ("value.1", 1, 6, "unexpected number .1"),
        ("value.'x'", 1, 7, "expected a key name after 'value.'"),
        ("", 1, 1, "empty expression"),
        ("   ", 1, 4, "empty expression"),
        ("1 +", 1, 4, "unexpected end of the expression"),
        ("(1 + 2", 1, 7, "expected ')'"),
        ("[1, 2", 1, 6, "expected ']'"),
        ("1 2", 1, 3, "unexpected number 2"),
        ("value > 30 and", 1, 15, "unexpected end"),
        ("1 if true", 1, 10, "expected 'else'"),
        ("'abc", 1, 1, "unterminated string"),
        ("'a\\d'", 1, 3, "unknown escape '\\\\d'"),
        ("1_000", 1, 1, "malformed number '1_000'"),
        ("0x1F", 1, 1, "malformed number '0x1F'"),
        ("99999999999999999999", 1, 1, "integer 99999999999999999999 is too large"),
        ("1e999", 1, 1, "too large"),
        ("value = 3", 1, 7, "use '=='"),
        ("value > 3 && true", 1, 11, "use 'and'"),
        ("!value", 1, 1, "use 'not'"),
        ("value ^ 2", 1, 7, "use '**'"),
        ("value is None", 1, 7, "'is' is not supported"),
        ("a ? b : c", 1, 3, "'?' is not supported"),
        ("vålue", 1, 2, "names are ASCII"),
        ("¹", 1, 1, "unexpected character '¹'"),  # str.isdigit() is true for it
        ("٣ + 1", 1, 1, "unexpected character"),  # and re's \d matches this one
    ],
)
def test_load_errors_say_where_and_what(text: str, line: int, column: int, message: str) -> None:
    error = load_error(text)
    assert message in error.message
    assert (error.line, error.column) == (line, column)
    assert str(error) == f"{line}:{column}: {error.message}"
    assert isinstance(error, TidegateError)


def test_load_error_messages_are_one_line() -> None:
    for text in ("vlaue", "abz(1)", "'a' - 1", "lambda: 1", "(" * 200):
        assert "\n" not in load_error(text).message


def test_a_non_string_expression_is_refused() -> None:
    error = load_error(True)  # type: ignore[arg-type]  # YAML may hand over a bool
    assert "must be text" in error.message


# --------------------------------------------------------- run-time errors

RUNTIME_FAILURES: list[tuple[str, Value]] = [
    ("value.humidity", 21.5),
    ("value / 0", 1),
    ("value // 0.0", 1.5),
    ("value % 0", 1),
    ("1 / value", 0),
    ("value ** -1", 0),
    ("value > 'a'", 3),
    ("value < 3", "x"),
    ("value < 3", {"a": 1}),
    ("value + 1", "x"),
    ("value + 1", True),
    ("-value", "x"),
    ("value * 'a'", "b"),
    ("value * value", 3.0e200),
    ("value ** 2", 1e200),
    ("value ** 0.5", -4),
    ("value * 2", 2**62),
    ("value + 1", 2**63 - 1),
    ("-value", -(2**63)),
    ("abs(value)", -(2**63)),
    ("value // -1", -(2**63)),
    ("value ** value", 99),
    ("'a' * value", 10**9),
    ("value * 10 ** 9", "a"),
    ("value + value", "a" * (MAX_STRING // 2 + 1)),
    ("value in 'abc'", 1),
    ("'a' in value", 1),
    ("value in tags", 1),
    ("value.x", "string"),
]


@pytest.mark.parametrize(
    ("text", "value"), RUNTIME_FAILURES, ids=[text for text, _ in RUNTIME_FAILURES]
)
def test_run_time_errors_are_expression_runtime_errors_only(text: str, value: Value) -> None:
    error = runtime_error(text, event(value))
    assert isinstance(error, TidegateError)
    assert error.args[0]


def test_a_defect_surfaces_as_an_expression_runtime_error() -> None:
    class BrokenMapping(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            raise KeyError(key)

    with pytest.raises(ExpressionRuntimeError, match="internal error: KeyError"):
        compile_expression("value.x").evaluate(event(BrokenMapping(x=1)))


def test_an_unsupported_value_type_is_a_runtime_error() -> None:
    odd = event(complex(1, 2))  # type: ignore[arg-type]
    with pytest.raises(ExpressionRuntimeError, match="unsupported value of type complex"):
        compile_expression("value + 1").evaluate(odd)
