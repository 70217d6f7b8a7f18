"""The rule expression language: semantics, errors, and what it must refuse."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidegate.errors import TidegateError
from tidegate.event import Event, Value
from tidegate.rules.expr import compiler as expr
from tidegate.rules.expr.compiler import (
    FUNCTIONS,
    Expression,
    ExpressionError,
    ExpressionRuntimeError,
    compile_expression,
)
from tidegate.rules.expr.evaluator import (
    ARITHMETIC,
    COMPARISONS,
    MAX_STRING,
    binary_kinds,
    compare_allowed,
    kind_of,
)
from tidegate.rules.expr.parser import MAX_DEPTH, MAX_LENGTH


def event(
    value: Value = 21.5,
    *,
    source: str = "gh1",
    tags: dict[str, str] | None = None,
    unit: str | None = "degC",
) -> Event:
    return Event(
        source=source,
        name="temperature",
        value=value,
        time=1_700_000_000.25,
        id="0189f0c0-0000-7000-8000-000000000001",
        seq=7,
        unit=unit,
        tags={"room": "a", "floor": "2"} if tags is None else tags,
    )


EVENT = event()
CLIMATE = event({"humidity": 45, "temperature": 21.5, "ok": True, "label": "x"})


def run(text: str, on: Event = EVENT) -> object:
    return compile_expression(text).evaluate(on)


def load_error(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert "internal error" not in info.value.message
    return info.value


def runtime_error(text: str, on: Event) -> ExpressionRuntimeError:
    compiled = compile_expression(text)
    with pytest.raises(ExpressionRuntimeError) as info:
        compiled.evaluate(on)
    assert "internal error" not in str(info.value)
    with pytest.raises(ExpressionRuntimeError):
        compiled.test(on)
    return info.value


# ------------------------------------------------------------------ literals


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("2.5", 2.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("1.5E-3", 0.0015),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'a\\nb\\tc\\\\'", "a\nb\tc\\"),
        ("'\\u00e9'", "é"),
        ("'é ü'", "é ü"),
        ("true", True),
        ("false", False),
        ("null", None),
        ("True", True),
        ("False", False),
        ("None", None),
        ("[]", []),
        ("[1, 'a', [true, null],]", [1, "a", [True, None]]),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_literals(text: str, expected: object) -> None:
    result = run(text)
    assert result == expected
    assert type(result) is type(expected)


def test_a_constant_list_is_a_fresh_copy_for_each_event() -> None:
    compiled = compile_expression("[1, [2]]")
    first = compiled.evaluate(EVENT)
    assert isinstance(first, list)
    first.append(3)
    first[1].append(4)
    assert compiled.evaluate(EVENT) == [1, [2]]


# ---------------------------------------------------------------- operators

ARITHMETIC_CASES = [
    ("+", 2, 3, 5),
    ("+", 2, 0.5, 2.5),
    ("+", "ab", "cd", "abcd"),
    ("-", 2, 3, -1),
    ("-", 2.5, 1, 1.5),
    ("*", 4, 2.5, 10.0),
    ("*", "ab", 3, "ababab"),
    ("*", 2, "ab", "abab"),
    ("*", "ab", -1, ""),
    ("/", 7, 2, 3.5),
    ("/", 6, 3, 2.0),
    ("//", 7, 2, 3),
    ("//", -7, 2, -4),
    ("//", 7.5, 2, 3.0),
    ("%", 7, 3, 1),
    ("%", -7, 3, 2),
    ("%", 7, -3, -2),
    ("%", 7.5, 2, 1.5),
    ("**", 2, 10, 1024),
    ("**", 2, -1, 0.5),
    ("**", 4, 0.5, 2.0),
    ("**", -8, 3, -512),
    ("**", -2.0, 2.0, 4.0),
    ("**", 0, 0, 1),
    ("**", -1, 2**62, 1),
]


@pytest.mark.parametrize(("op", "a", "b", "expected"), ARITHMETIC_CASES)
def test_arithmetic_agrees_folded_and_at_run_time(op: str, a: Any, b: Any, expected: Any) -> None:
    folded = run(f"({a!r}) {op} ({b!r})")
    at_run_time = run(f"value.a {op} value.b", event({"a": a, "b": b}))
    assert folded == expected == at_run_time
    assert type(folded) is type(expected) is type(at_run_time)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("-2 ** 2", -4),
        ("2 ** 3 ** 2", 512),
        ("2 ** -1 * 4", 2.0),
        ("-(-3)", 3),
        ("+3", 3),
        ("10 - 4 - 3", 3),
        ("2 * 3 % 4", 2),
        ("not true == false", True),
        ("true or false and false", True),
        ("not 1 < 2 and true", False),
        ("1 if false else 2 if false else 3", 3),
        ("1 + 1 if 2 > 1 else 0", 2),
        ("1 < 2 < 3", True),
        ("3 > 2 > 2", False),
        ("1 < 3 > 2 == 2 != 5", True),
        ("1 in [1] in [[1]]", True),  # chains like Python: (1 in [1]) and ([1] in [[1]])
        ("1 in [1] in [true]", False),
    ],
)
def test_precedence_matches_python(text: str, expected: object) -> None:
    result = run(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 == 1.0", True),
        ("true == 1", False),
        ("1 != true", True),
        ("0 == false", False),
        ("'1' == 1", False),
        ("null == null", True),
        ("null == 0", False),
        ("[1, 2] == [1, 2.0]", True),
        ("[true] == [1]", False),
        ("[1] != [1, 2]", True),
        ("'a' < 'b'", True),
        ("'b' <= 'a'", False),
        ("1 < 1.5", True),
        ("2 >= 2.0", True),
        ("1 in [1, 2]", True),
        ("1.0 in [1, 2]", True),
        ("true in [1]", False),
        ("1 in [true]", False),
        ("null in [0, '', false]", False),
        ("null in [1, null]", True),
        ("[1] in [[1], 2]", True),
        ("'b' in 'abc'", True),
        ("'d' not in 'abc'", True),
        ("3 not in [1, 2]", True),
        ("'' in ''", True),
    ],
)
def test_comparisons(text: str, expected: bool) -> None:
    assert run(text) is expected


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("value > 30", 31, True),
        ("value > 30", 30.0, False),
        ("value >= 30", 30, True),
        ("value < 30", 29.9, True),
        ("value <= 30", 30.5, False),
        ("value == 30", 30.0, True),
        ("value == 1", True, False),
        ("value != 1", True, True),
        ("value == true", True, True),
        ("value == true", 1, False),
        ("value == 'on'", "on", True),
        ("value == 'on'", 1, False),
        ("value != 'on'", "off", True),
        ("value in [1, 'a', true]", "a", True),
        ("value in [1, 'a', true]", 1.0, True),
        ("value in [1, 'a']", True, False),
        ("value in [1, 'a', true]", True, True),
        ("value in [1, [2]]", 2, False),
        ("value not in ['a', 'b']", "c", True),
        ("'humidity' in value", {"humidity": 1}, True),
        ("'x' in value", {"humidity": 1}, False),
        ("value in 'abc'", "bc", True),
        ("0 < value < 10", 5, True),
        ("0 < value < 10", 10, False),
    ],
)
def test_comparisons_with_event_values(text: str, value: Value, expected: bool) -> None:
    assert run(text, event(value)) is expected


def test_ordering_a_number_subclass_works() -> None:
    class Reading(float):
        pass

    assert run("value > 30", event(Reading(31.0))) is True
    assert run("value * 2", event(Reading(1.5))) == 3.0


def test_and_or_return_an_operand_and_short_circuit() -> None:
    assert run("tags.missing or 'hall'") == "hall"
    assert run("tags.room and 5") == 5
    assert run("0 and value.humidity") == 0
    # The right side would fail on a number value; it is never evaluated.
    assert run("value > 100 and value.humidity > 3") is False
    assert run("value < 100 or value.humidity > 3") is True
    assert run("value if is_number(value) else value.humidity") == 21.5
    assert run("value.humidity if not is_number(value) else -1") == -1


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, False), (0.0, False), ("", False), (1, True), ("x", True), ({}, False), (False, False)],
)
def test_truthiness_for_where(value: Value, expected: bool) -> None:
    assert compile_expression("value").test(event(value)) is expected
    assert run("not value", event(value)) is (not expected)


# -------------------------------------------------------------- event fields


def test_every_event_field_reads() -> None:
    assert run("value") == 21.5
    assert run("name") == "temperature"
    assert run("source") == "gh1"
    assert run("unit") == "degC"
    assert run("time") == 1_700_000_000.25
    assert run("seq") == 7
    assert run("id") == "0189f0c0-0000-7000-8000-000000000001"
    assert run("tags") == {"room": "a", "floor": "2"}
    assert run("tags.room") == "a"
    assert run("unit", event(unit=None)) is None


def test_tags_missing_or_absent_read_as_null() -> None:
    assert run("tags.zone") is None
    bare = event(tags={})
    assert run("tags.room", bare) is None
    assert run("tags", bare) == {}
    assert run("coalesce(tags.room, 'hall')", bare) == "hall"
    untagged = Event(source="s", name="n", value=1, tags=None)
    assert run("tags.room", untagged) is None
    assert run("len(tags)", untagged) == 0


@pytest.mark.parametrize("text", ["tags", "value", "value if true else tags"])
def test_a_mapping_result_is_a_copy(text: str) -> None:
    sample = event({"humidity": 45})
    result = run(text, sample)
    assert isinstance(result, dict)
    result["room"] = "changed"
    assert sample.tags == {"room": "a", "floor": "2"}
    assert sample.value == {"humidity": 45}


def test_mapping_values() -> None:
    assert run("value.humidity", CLIMATE) == 45
    assert run("value.humidity >= 40 if source == 'gh1' else true", CLIMATE) is True
    assert run("value.missing", CLIMATE) is None
    assert run("value.temperature * 1.8 + 32", CLIMATE) == pytest.approx(70.7)
    assert run("value", CLIMATE) == CLIMATE.value
    error = runtime_error("value.humidity", EVENT)
    assert error.args[0] == "value.humidity: value is float, not a mapping"


def test_names_lists_the_fields_read() -> None:
    compiled = compile_expression("value.humidity > 3 and tags.room == 'a' or seq > 1 and seq < 9")
    assert compiled.names == frozenset({"value.humidity", "tags.room", "seq"})
    assert compile_expression("1 + 2").names == frozenset()
    assert compiled.source == "value.humidity > 3 and tags.room == 'a' or seq > 1 and seq < 9"
    assert repr(compile_expression("value")) == "Expression('value')"


# ----------------------------------------------------------------- functions

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


# ------------------------------------------------------------ escape corpus

REFUSED_AT_LOAD = [
    "value.__class__",
    "value.__class__.__bases__",
    "().__class__.__bases__",
    "().__class__.__bases__[0].__subclasses__()",
    "''.__class__.__mro__[1].__subclasses__()",
    "__import__('os')",
    "__import__('os').system('id')",
    "__builtins__",
    "open('/etc/passwd')",
    "open('/etc/passwd').read()",
    "eval('1')",
    "exec('import os')",
    "compile('1', '', 'eval')",
    "getattr(value, '__class__')",
    "globals()",
    "vars()",
    "type(value)",
    "lambda: 1",
    "(lambda x: x)(1)",
    "[x for x in [1, 2]]",
    "[x for x in [1] for y in [1] for z in [1] for w in [1]]",
    "[[0] * 10**9 for x in [1]]",
    "{x for x in [1]}",
    "(x for x in [1])",
    "{'a': 1}",
    "[1] * 10**9",
    "[0] * 10**8 * 10**8",
    "9**9**9",
    "10**10**10",
    "2**64",
    "2**63",
    "'a' * 10**9",
    "'a' * 10**4 * 10**4",
    "'ab' * 5001",
    "'x' * 9999 + 'x' * 9999",
    "str([0] * 9)",
    "'{0.__class__}'.format(value)",
    "'{}'.format(1)",
    "'%s' % value",
    "'%s' % 'a'",
    "f'{value}'",
    "f'{value.__class__}'",
    "rf'{1}'",
    "b'\\x00'",
    "(y := 1)",
    "[y := 1]",
    "*value",
    "abs(*[1])",
    "max(**{})",
    "round(x=1)",
    "'abc'[0]",
    "[1, 2][0]",
    "value[0]",
    "tags['room']",
    "name[::-1]",
    "abs.__call__",
    "abs.__self__",
    "lower.__globals__",
    "min.x",
    "(abs)(1)",
    "abs(1)(2)",
    "str.format",
    "1 .__class__",
    "1.__class__",
    "True.__class__",
    "value.__dict__",
    "tags.__len__",
    "tags.get('room')",
    "import os",
    "1; 2",
    "value # comment",
    "value \\\n > 1",
    "`value`",
    "1 if true else __import__('os')",
    "(" * 10_000,
    "(" * 100_000,
    "(" * 10_000 + "1" + ")" * 10_000,
    "[" * 10_000,
    "-" * 100_000 + "1",
    "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1),
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    "-" * (MAX_DEPTH + 1) + "1",
    "not " * (MAX_DEPTH + 1) + "true",
    "abs(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1),
    "+".join(["value"] * (MAX_DEPTH + 2)),
    "**".join(["1"] * (MAX_DEPTH + 2)),
    "'" + "a" * MAX_LENGTH + "'",
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", REFUSED_AT_LOAD, ids=lambda text: repr(text[:40]))
def test_escape_attempts_are_refused_at_load(text: str) -> None:
    load_error(text)


BOUNDED_AT_RUN_TIME: list[tuple[str, Value]] = [
    ("value ** value", 99),
    ("value ** value ** value", 9),
    ("value ** 9 ** 9", 2),
    ("10 ** value", 10**10),
    ("value ** 0.5 ** -1000", 2.0),
    ("'a' * value", 10**9),
    ("value * value", "a"),
    ("value * 10 ** 9", "a"),
    ("value * 2", "a" * (MAX_STRING // 2 + 1)),
    ("str([value, value])", "a" * 6000),
    ("value * value * value * value", 2**40),
    ("int(value)", "1" * 5000),
    ("str(value)", 10**5000),
    ("sqrt(value)", 10**400),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("text", "value"), BOUNDED_AT_RUN_TIME, ids=[text for text, _ in BOUNDED_AT_RUN_TIME]
)
def test_escape_attempts_are_bounded_at_run_time(text: str, value: Value) -> None:
    runtime_error(text, event(value))


def test_huge_rounding_digits_are_bounded_not_computed() -> None:
    assert run("round(value, -10 ** 18)", event(5)) == 0
    assert run("round(value, 10 ** 18)", event(2.5)) == 2.5


def test_the_smallest_integer_is_in_range() -> None:
    assert run("(-2) ** 63") == -(2**63)
    assert run("value ** 63", event(-2)) == -(2**63)


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


def test_expression_is_the_public_type() -> None:
    assert isinstance(compile_expression("1"), Expression)
