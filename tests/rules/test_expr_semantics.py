"""The expression language's semantics: literals, operators, comparisons, event fields."""

from __future__ import annotations

from typing import Any

import pytest

from tests.rules.expr_support import CLIMATE, EVENT, event, run, runtime_error
from tidegate.event import Event, Value
from tidegate.rules.expr import Expression, compile_expression

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


def test_expression_is_the_public_type() -> None:
    assert isinstance(compile_expression("1"), Expression)
