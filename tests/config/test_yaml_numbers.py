"""Numbers in config and rule files: YAML 1.2 core schema, bounded, refused where they are.

PyYAML reads YAML 1.1, where ``1:1:1:…`` is an integer in base 60: its
conversion costs time quadratic in its length (400 KB took 12.5 s), and a
value like ``12:30`` silently became 750. Numbers are read by the YAML 1.2
core schema instead (base 60 is gone: ``12:30`` is text), and a number longer
than ``MAX_NUMBER_CHARS``, an integer beyond 64 bits or a float beyond the
float range is refused with its position before anything uses it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tidegate.config.yaml_numbers import MAX_NUMBER_CHARS
from tidegate.config.yaml_source import load_yaml_text
from tidegate.errors import ConfigError


def value(text: str) -> Any:
    data, _ = load_yaml_text(f"x: {text}\n", "f.yaml")
    return data["x"]


def messages(text: str) -> list[str]:
    with pytest.raises(ConfigError) as failed:
        load_yaml_text(text, "f.yaml")
    return failed.value.messages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Integers: decimal (leading zeros are decimal too), 0o octal, 0x hex.
        ("0", 0),
        ("-12", -12),
        ("+7", 7),
        ("010", 10),
        ("0o17", 15),
        ("0x1F", 31),
        # Floats, with or without a dot, and the named ones.
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("-.5", -0.5),
        ("2.", 2.0),
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        # YAML 1.1 forms that are text in YAML 1.2: base 60 above all.
        ("12:30", "12:30"),
        ("1:1:1", "1:1:1"),
        ("190:20:30.15", "190:20:30.15"),
        ("0b101", "0b101"),
        ("1_000", "1_000"),
        ("-0x10", "-0x10"),
        # Unchanged: booleans and dates are not numbers.
        ("yes", True),
        ("'12'", "12"),
    ],
)
def test_numbers_are_read_by_the_yaml_1_2_core_schema(text: str, expected: Any) -> None:
    got = value(text)
    assert (type(got), got) == (type(expected), expected)


def test_nan_is_a_float() -> None:
    assert math.isnan(value(".nan"))


def test_a_long_sexagesimal_looking_value_is_text() -> None:
    # 400 KB: was an int of 1.8 million bits after 12 s of CPU.
    text = "1" + ":1" * 200_000
    assert value(text) == text


def test_numbers_at_the_limits_load() -> None:
    assert value(str(2**63 - 1)) == 2**63 - 1
    assert value(str(-(2**63))) == -(2**63)
    assert value("0x7fffffffffffffff") == 2**63 - 1
    longest = "0." + "0" * (MAX_NUMBER_CHARS - 3) + "1"
    assert len(longest) == MAX_NUMBER_CHARS
    assert value(longest) == float(longest)
    assert value("1e308") == 1e308


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("0x" + "f" * 5000, "the number 0xffffffffff… has 5,002 characters; at most 100"),
        ("1" * (MAX_NUMBER_CHARS + 1), "has 101 characters; at most 100"),
        ("1." + "1" * 900_000, "has 900,002 characters"),
        ("!!int " + "1" * 400, "has 400 characters"),
        (str(2**63), "9223372036854775808 is beyond the 64-bit integer range"),
        (str(-(2**63) - 1), "is beyond the 64-bit integer range"),
        ("0x" + "f" * 16, "0xffffffffffffffff is beyond the 64-bit integer range"),
        ("1e400", "1e400 is beyond the range of a floating-point number"),
        ("-1.5e309", "-1.5e309 is beyond the range"),
    ],
)
def test_a_number_beyond_the_limits_is_refused_where_it_is(text: str, needle: str) -> None:
    (message,) = messages(f"a: 1\nb: [2, {text}]\n")
    assert message.startswith("f.yaml:2:8: "), message
    assert needle in message, message
    assert len(message) < 300, message  # never the whole number


def test_a_number_too_long_as_a_key_is_refused_too() -> None:
    (message,) = messages("a:\n  " + "9" * 200 + ": x\n")
    assert message.startswith("f.yaml:2:3: ") and "has 200 characters" in message, message


@pytest.mark.parametrize(
    ("text", "kind"), [("!!int 1:1:1", "int"), ("!!int 0b101", "int"), ("!!float 1:30", "float")]
)
def test_explicit_tags_take_only_the_core_forms(text: str, kind: str) -> None:
    (message,) = messages(f"x: {text}\n")
    assert message.startswith("f.yaml:1:4: ") and f"is not a valid {kind}" in message, message
