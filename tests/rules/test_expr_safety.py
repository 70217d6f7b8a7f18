"""What the expression language must refuse or bound: escapes, huge values, deep nesting."""

from __future__ import annotations

import pytest

from tests.rules.expr_support import event, load_error, run, runtime_error
from tidegate.event import Value
from tidegate.rules.expr import MAX_DEPTH, MAX_LENGTH, MAX_STRING

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
