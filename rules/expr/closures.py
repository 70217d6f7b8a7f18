"""What an expression compiles to: closures over the event, specialised for the hot path.

A compiled part of an expression (``Compiled``) is a function of the event
plus what the compiler knows about it: the kinds it can produce, and its
value when it is a constant. The builders below pick the cheapest closure for
the common shapes (``value > 30``, ``tags.room in [...]``, a call of one or
two arguments), so evaluating an expression never walks a tree or looks an
operator up; every closure still ends in the checked operations of
``operators`` and ``functions`` for the values it does not handle inline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from tidegate.event import Event
from tidegate.rules.expr.functions import Function
from tidegate.rules.expr.operators import COMPARISONS
from tidegate.rules.expr.values import Kinds, Value, kind_of

Evaluator: TypeAlias = Callable[[Event], Value]
"""A compiled expression, or a part of one: the event in, the value out."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled part of an expression and what is known about it at load."""

    run: Evaluator
    kinds: Kinds
    """The kinds of value ``run`` can return."""
    constant: bool = False
    value: Value = None
    """The value, when ``constant``: the same for every event."""


def _fresh(value: Value) -> Value:
    """A new copy of a constant list, so no caller can change the constant for later events."""
    return [_fresh(item) for item in value] if type(value) is list else value


def compiled_constant(value: Value) -> Compiled:
    """The compiled form of a constant: ``value`` for every event."""
    run: Evaluator
    if type(value) is list:

        def run(event: Event) -> Value:
            return _fresh(value)
    else:

        def run(event: Event) -> Value:
            return value

    return Compiled(run, frozenset({kind_of(value)}), constant=True, value=value)


_ORDERINGS = frozenset({"<", "<=", ">", ">="})


def comparison(op: str, left: Compiled, right: Compiled) -> Evaluator:
    """One comparison, specialised when the right side is a constant (the usual case)."""
    compare, get = COMPARISONS[op], left.run
    if right.constant:
        constant = right.value
        if op in _ORDERINGS and (type(constant) is int or type(constant) is float):
            return _order_with_number(op, get, constant)
        if op in ("==", "!="):
            return _equality_with(get, constant, negate=op == "!=")
        if op in ("in", "not in") and type(constant) is list:
            return _membership_in(get, constant, negate=op == "not in")
    get_right = right.run

    def run(event: Event) -> Value:
        return compare(get(event), get_right(event))

    return run


def _order_with_number(op: str, get: Evaluator, number: int | float) -> Evaluator:
    slow = COMPARISONS[op]
    run: Evaluator
    # One closure per operator so the comparison itself is an inline bytecode.
    if op == "<":

        def run(event: Event) -> Value:
            x = get(event)
            if type(x) is float or type(x) is int:
                return x < number
            return slow(x, number)
    elif op == "<=":

        def run(event: Event) -> Value:
            x = get(event)
            if type(x) is float or type(x) is int:
                return x <= number
            return slow(x, number)
    elif op == ">":

        def run(event: Event) -> Value:
            x = get(event)
            if type(x) is float or type(x) is int:
                return x > number
            return slow(x, number)
    else:

        def run(event: Event) -> Value:
            x = get(event)
            if type(x) is float or type(x) is int:
                return x >= number
            return slow(x, number)

    return run


def _equality_with(get: Evaluator, constant: Value, *, negate: bool) -> Evaluator:
    equal = COMPARISONS["=="]
    test: Evaluator
    if constant is None or type(constant) is bool:
        # null, true and false are singletons in our values.
        def test(event: Event) -> Value:
            return get(event) is constant
    elif type(constant) is str:

        def test(event: Event) -> Value:
            return get(event) == constant
    elif type(constant) is int or type(constant) is float:

        def test(event: Event) -> Value:
            x = get(event)
            return x == constant and type(x) is not bool
    else:

        def test(event: Event) -> Value:
            return equal(get(event), constant)

    if not negate:
        return test

    def differs(event: Event) -> Value:
        return not test(event)

    return differs


def _membership_in(get: Evaluator, items: list[Value], *, negate: bool) -> Evaluator:
    """``x in [constants]`` by set lookups per kind, keeping bools apart from numbers."""
    member = COMPARISONS["in"]
    strings = frozenset(item for item in items if type(item) is str)
    numbers = frozenset(item for item in items if type(item) is int or type(item) is float)
    bools = frozenset(item for item in items if type(item) is bool)
    has_null = any(item is None for item in items)

    def contains(event: Event) -> Value:
        x = get(event)
        kind = type(x)
        if kind is str:
            return x in strings
        if kind is int or kind is float:
            return x in numbers
        if kind is bool:
            return x in bools
        if x is None:
            return has_null
        return member(x, items)

    if not negate:
        return contains

    def lacks(event: Event) -> Value:
        return not contains(event)

    return lacks


def chain(ops: tuple[str, ...], getters: tuple[Evaluator, ...]) -> Evaluator:
    """``a < b <= c``: each operand evaluated once, stopping at the first false link."""
    links = tuple(zip((COMPARISONS[op] for op in ops), getters[1:], strict=True))
    first = getters[0]

    def run(event: Event) -> Value:
        left = first(event)
        for compare, get in links:
            right = get(event)
            if not compare(left, right):
                return False
            left = right
        return True

    return run


def call(function: Function, getters: tuple[Evaluator, ...]) -> Evaluator:
    impl = function.impl
    run: Evaluator
    if len(getters) == 1:
        (a,) = getters

        def run(event: Event) -> Value:
            return impl(a(event))
    elif len(getters) == 2:
        a, b = getters

        def run(event: Event) -> Value:
            return impl(a(event), b(event))
    else:

        def run(event: Event) -> Value:
            return impl(*[get(event) for get in getters])

    return run


def coalesce(getters: tuple[Evaluator, ...]) -> Evaluator:
    def run(event: Event) -> Value:
        for get in getters:
            value = get(event)
            if value is not None:
                return value
        return None

    return run
