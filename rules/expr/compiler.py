"""The rule expression language: what you can write in ``where:`` and ``set:``.

Rules use small expressions over the event being processed::

    where: "value > 30 and tags.room in ['a', 'b']"
    set: {value: "value * 1.8 + 32", unit: "'degF'"}
    where: "value.humidity >= 40 if source == 'gh1' else true"

The syntax is a small, safe subset of Python's. An expression can only read
the event and compute a value: it cannot call anything but the functions
listed below, reach into Python objects, read files, or run for long.

Values
------
Numbers (``42``, ``-3``, ``2.5``, ``1e-3``), strings in single or double
quotes (escapes: ``\\\\ \\' \\" \\n \\t \\r \\uXXXX``), ``true``, ``false``,
``null`` (Python's ``True``, ``False``, ``None`` also work) and lists
(``['a', 'b']``). Integers range over ±2**63; a result outside that range, a
float that overflows, or a string longer than 10,000 characters is an error
rather than a slow or huge value. ``true`` and ``false`` are not numbers:
``true + 1`` is an error and ``true == 1`` is false.

The event
---------
``value``        the reading: a number, bool, string, or a mapping of them
``value.KEY``    one entry of a mapping value; ``null`` if the key is missing,
                 an error if ``value`` is not a mapping
``name``         the event's name (string)
``source``       the driver instance that produced it (string)
``unit``         its unit, or ``null``
``time``         wall-clock time, seconds since 1970 (number)
``seq``          per-source sequence number (int; 0 before the outbox accepts it)
``id``           the event's unique id (string)
``tags``         the mapping of tags (empty if there are none)
``tags.KEY``     one tag (string), or ``null`` if the event lacks it

Keys after ``.`` are plain names (letters, digits, ``_``), not starting with
``__``. Nothing else has a ``.``; there are no subscripts (``x[0]``).

Operators, loosest binding first (as in Python)
-----------------------------------------------
``a if cond else b``   conditional; only the chosen branch is evaluated
``or``, ``and``        short-circuit; they return an operand, as in Python
``not``                boolean negation
``== != < <= > >= in``, ``not in``   comparisons, chainable: ``0 <= value < 100``
``+ -``                addition, subtraction; ``+`` also joins two strings
``* / // %``           multiplication (also ``'ab' * 3``), true division,
                       floor division, modulo (sign of the divisor, as in Python)
``-x``, ``+x``         negation
``**``                 power, right-associative: ``2 ** 3 ** 2`` is ``2 ** 9``

``==`` and ``!=`` compare any two values (``1 == 1.0``; a number never equals a
string or a bool). ``<`` and friends compare two numbers or two strings, and
anything else is an error. ``x in [..]`` tests list membership with ``==``;
``'ab' in s`` tests for a substring; ``'k' in value`` tests a mapping's keys.
Truth, for ``where``, ``and``, ``or``, ``not`` and ``if``: ``false``, ``null``,
``0``, ``0.0``, ``''``, ``[]`` and an empty mapping are false; all else is true.

Functions
---------
``abs(x)``                  absolute value of a number
``min(a, b, ...)``          smallest of numbers or of strings; also ``min(list)``
``max(a, b, ...)``          largest of numbers or of strings; also ``max(list)``
``round(x[, ndigits])``     round half to even (``round(2.5) == 2``); an int
                            without ``ndigits``, otherwise the type of ``x``
``clamp(x, lo, hi)``        ``x`` limited to ``lo``..``hi``
``int(x)``                  number truncated toward zero, bool as 0/1, or a
                            string of digits (``int('42')``)
``float(x)``                number, bool or numeric string as a float
``str(x)``                  a string unchanged; anything else as JSON text
                            (``str(true) == 'true'``, ``str([1]) == '[1]'``)
``bool(x)``                 truthiness, as defined above
``len(x)``                  length of a string, list or mapping
``lower(s)``, ``upper(s)``  the string in lower / upper case
``startswith(s, prefix)``   whether string ``s`` starts with ``prefix``
``endswith(s, suffix)``     whether string ``s`` ends with ``suffix``
``contains(c, item)``       the same as ``item in c``
``sqrt(x)``                 square root of a number >= 0
``log(x[, base])``          natural logarithm, or to ``base``, of a number > 0
``exp(x)``                  e to the power ``x``
``floor(x)``, ``ceil(x)``   the int just below / above a number
``coalesce(a, b, ...)``     the first argument that is not ``null``; later
                            arguments are not evaluated: ``coalesce(tags.room, 'hall')``
``is_number(x)``            whether ``x`` is an int or a float (not a bool)

Errors
------
Mistakes that can be seen in the text are reported when the configuration is
loaded, with the line and column inside the expression: unknown names and
functions (with a "did you mean" suggestion), wrong numbers of arguments,
unsupported syntax, and operations that cannot work whatever the event holds
(``name * 2.5``, ``'a' - 1``). Parts made only of constants are computed at
load, so ``1 / 0`` or ``9 ** 9 ** 9`` are load errors too. Other failures
depend on the event (``value.humidity`` when ``value`` is a number, a string
compared with a number, a division by zero) and make that one event fail: the
rule counts it and drops or dead-letters the event, and the gateway goes on.

How it works, and why this way
------------------------------
The text is parsed once, at load, by our own tokenizer and Pratt parser
(``expr_parse``), not by Python's ``ast``. The grammar is a small subset, so
the parser is short and every construct it accepts is accepted on purpose;
its cost on hostile input is bounded by us (at most 1,000 characters and 100
levels of nesting, counted before Python's recursion limit could be reached),
whereas ``ast.parse``'s failure modes on deep nesting (RecursionError,
MemoryError, "too many nested parentheses") depend on the Python version; its
columns are byte offsets where ours are characters; and ``true``/``null`` are
names to it. The tree is then compiled into nested Python closures with the
constants folded in and the common shapes (``value > 30``, ``tags.room in
[...]``) specialised, so evaluating does not walk the tree again. Nothing is
ever passed to ``eval``, ``exec`` or ``compile``, and the only callables
reachable are the operations of ``expr_eval`` and the functions above.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import TypeAlias

from tidegate.event import Event
from tidegate.rules.expr.evaluator import (
    ANY,
    ARITHMETIC,
    BOOL,
    COMPARISONS,
    FLOAT,
    FUNCTIONS,
    INT,
    LIST,
    MAPPING,
    NULL,
    NUMBER,
    SCALAR,
    STRING,
    UNARY,
    ExpressionRuntimeError,
    Function,
    Kinds,
    Value,
    binary_kinds,
    compare_allowed,
    describe,
    kind_of,
    unary_kinds,
)
from tidegate.rules.expr.parser import (
    Attribute,
    Binary,
    BoolOp,
    Call,
    Compare,
    Conditional,
    Const,
    ExpressionError,
    ListLiteral,
    Name,
    Node,
    Pos,
    Unary,
    parse,
)

__all__ = [
    "FUNCTIONS",
    "Expression",
    "ExpressionError",
    "ExpressionRuntimeError",
    "Function",
    "compile_expression",
]

Evaluator: TypeAlias = Callable[[Event], Value]


class Expression:
    """A compiled expression: evaluate it against events, as often as needed."""

    __slots__ = ("_run", "names", "source")

    def __init__(self, source: str, run: Evaluator, names: frozenset[str]) -> None:
        self.source = source
        self.names = names
        """The event fields read, as written: 'value', 'tags.room', 'value.humidity'."""
        self._run = run

    def evaluate(self, event: Event) -> object:
        """The expression's value for ``event``: int, float, bool, str, None, list or dict."""
        try:
            return self._run(event)
        except ExpressionRuntimeError:
            raise
        except Exception as exc:  # a defect in an operation must fail one event, not the gateway
            raise _internal(exc) from exc

    def test(self, event: Event) -> bool:
        """The expression's truth for ``event``, as ``where:`` uses it."""
        try:
            return bool(self._run(event))
        except ExpressionRuntimeError:
            raise
        except Exception as exc:  # see evaluate
            raise _internal(exc) from exc

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _internal(exc: BaseException) -> ExpressionRuntimeError:
    return ExpressionRuntimeError(f"internal error: {type(exc).__name__}: {exc}")


def compile_expression(text: str) -> Expression:
    """Parse and compile ``text``; raise ExpressionError (with line and column) if it is refused."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, not {type(text).__name__}")
    compiler = _Compiler()
    try:
        compiled = compiler.compile(parse(text))
    except ExpressionError:
        raise
    except Exception as exc:  # a defect here must still read as a config error, not a crash
        raise ExpressionError(f"internal error: {type(exc).__name__}: {exc}") from exc
    run = _copying_mappings(compiled.run) if MAPPING in compiled.kinds else compiled.run
    return Expression(text, run, frozenset(compiler.names))


def _copying_mappings(run: Evaluator) -> Evaluator:
    """Return a mapping result as a copy, so no caller can alter the event's own value."""

    def copying(event: Event) -> Value:
        result = run(event)
        return dict(result) if isinstance(result, dict) else result

    return copying


# ----------------------------------------------------------------- compiler


@dataclass(frozen=True, slots=True)
class _Compiled:
    run: Evaluator
    kinds: Kinds
    constant: bool = False
    value: Value = None


_FOLDING_EVENT = Event(source="", name="", value=0, time=0.0, id="")
"""Passed to closures over constants when folding them; they never read it."""

_BOOL: Kinds = frozenset({BOOL})
_STRING: Kinds = frozenset({STRING})
_ORDERINGS = frozenset({"<", "<=", ">", ">="})


def _all_tags(event: Event) -> dict[str, str]:
    return event.tags or {}


_FIELDS: dict[str, tuple[Evaluator, Kinds]] = {
    "value": (attrgetter("value"), frozenset({INT, FLOAT, BOOL, STRING, MAPPING})),
    "name": (attrgetter("name"), _STRING),
    "source": (attrgetter("source"), _STRING),
    "unit": (attrgetter("unit"), frozenset({STRING, NULL})),
    "time": (attrgetter("time"), NUMBER),
    "seq": (attrgetter("seq"), frozenset({INT})),
    "id": (attrgetter("id"), _STRING),
    "tags": (_all_tags, frozenset({MAPPING})),
}
_SUGGESTIBLE_NAMES = [*_FIELDS, "true", "false", "null"]


def _refuse(message: str, pos: Pos) -> ExpressionError:
    return ExpressionError(message, pos.line, pos.column)


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fresh(value: Value) -> Value:
    """A new copy of a constant list, so no caller can change the constant for later events."""
    return [_fresh(item) for item in value] if type(value) is list else value


def _constant(value: Value) -> _Compiled:
    run: Evaluator
    if type(value) is list:

        def run(event: Event) -> Value:
            return _fresh(value)
    else:

        def run(event: Event) -> Value:
            return value

    return _Compiled(run, frozenset({kind_of(value)}), constant=True, value=value)


def _union(parts: Iterable[_Compiled]) -> Kinds:
    return frozenset().union(*(part.kinds for part in parts))


class _Compiler:
    """Turns a tree into closures, checking kinds and folding constants on the way."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def compile(self, node: Node) -> _Compiled:
        match node:
            case Const(value=value):
                return _constant(value)
            case Name():
                return self._name(node)
            case Attribute():
                return self._attribute(node)
            case Unary():
                return self._unary(node)
            case Binary():
                return self._binary(node)
            case BoolOp():
                return self._bool_op(node)
            case Compare():
                return self._compare(node)
            case Conditional():
                return self._conditional(node)
            case ListLiteral():
                return self._list(node)
            case Call():
                return self._call(node)

    @staticmethod
    def _fold(run: Evaluator, pos: Pos) -> _Compiled:
        """Evaluate a closure over constants now; its error is then a load error at ``pos``."""
        try:
            value = run(_FOLDING_EVENT)
        except ExpressionRuntimeError as exc:
            raise _refuse(str(exc), pos) from None
        return _constant(value)

    # -- names and fields

    def _unknown_name(self, word: str, pos: Pos) -> ExpressionError:
        if word in FUNCTIONS:
            return _refuse(f"'{word}' is a function; call it as {word}(...)", pos)
        hint = _did_you_mean(word, _SUGGESTIBLE_NAMES) or (
            f"; the event's fields are {', '.join(_FIELDS)}"
        )
        return _refuse(f"unknown name '{word}'{hint}", pos)

    def _name(self, node: Name) -> _Compiled:
        if node.name not in _FIELDS:
            raise self._unknown_name(node.name, node.pos)
        self.names.add(node.name)
        run, kinds = _FIELDS[node.name]
        return _Compiled(run, kinds)

    def _attribute(self, node: Attribute) -> _Compiled:
        base, key = node.base, node.key
        if base not in _FIELDS:
            raise self._unknown_name(base, node.pos)
        self.names.add(f"{base}.{key}")
        if base == "tags":

            def tag(event: Event) -> Value:
                tags = event.tags
                return tags.get(key) if tags else None

            return _Compiled(tag, frozenset({STRING, NULL}))
        if base == "value":

            def entry(event: Event) -> Value:
                value = event.value
                if type(value) is dict:
                    return value.get(key)
                if kind_of(value) == MAPPING:
                    return value.get(key)  # type: ignore[union-attr]
                raise ExpressionRuntimeError(
                    f"value.{key}: value is {kind_of(value)}, not a mapping"
                )

            return _Compiled(entry, SCALAR)
        raise _refuse(f"'{base}' has no keys; only value and tags do (value.x, tags.x)", node.pos)

    # -- operators

    def _unary(self, node: Unary) -> _Compiled:
        operand = self.compile(node.operand)
        inner = operand.run
        if node.op == "not":

            def negation(event: Event) -> Value:
                return not inner(event)

            run, kinds = negation, _BOOL
        else:
            kinds = unary_kinds(node.op, operand.kinds)
            if not kinds:
                raise _refuse(f"cannot apply '{node.op}' to {describe(operand.kinds)}", node.pos)
            op = UNARY[node.op]

            def arithmetic(event: Event) -> Value:
                return op(inner(event))

            run = arithmetic
        if operand.constant:
            return self._fold(run, node.pos)
        return _Compiled(run, kinds)

    def _binary(self, node: Binary) -> _Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        kinds = binary_kinds(node.op, left.kinds, right.kinds)
        if not kinds:
            raise _refuse(
                f"cannot apply '{node.op}' to {describe(left.kinds)} and {describe(right.kinds)}",
                node.pos,
            )
        op, get_left, get_right = ARITHMETIC[node.op], left.run, right.run
        run: Evaluator
        if right.constant:
            constant = right.value

            def run(event: Event) -> Value:
                return op(get_left(event), constant)
        else:

            def run(event: Event) -> Value:
                return op(get_left(event), get_right(event))

        if left.constant and right.constant:
            return self._fold(run, node.pos)
        return _Compiled(run, kinds)

    def _bool_op(self, node: BoolOp) -> _Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        is_and = node.op == "and"
        if left.constant:
            # 'a and b' is b when a is true, else a; 'a or b' the other way round.
            return right if bool(left.value) == is_and else left
        get_left, get_right = left.run, right.run
        run: Evaluator
        if is_and:

            def run(event: Event) -> Value:
                first = get_left(event)
                return get_right(event) if first else first
        else:

            def run(event: Event) -> Value:
                first = get_left(event)
                return first if first else get_right(event)

        return _Compiled(run, _union((left, right)))

    def _conditional(self, node: Conditional) -> _Compiled:
        then, test, orelse = (self.compile(n) for n in (node.then, node.test, node.orelse))
        if test.constant:
            return then if test.value else orelse
        get_then, get_test, get_else = then.run, test.run, orelse.run

        def run(event: Event) -> Value:
            return get_then(event) if get_test(event) else get_else(event)

        return _Compiled(run, _union((then, orelse)))

    def _list(self, node: ListLiteral) -> _Compiled:
        items = [self.compile(item) for item in node.items]
        if all(item.constant for item in items):
            return _constant([item.value for item in items])
        getters = tuple(item.run for item in items)

        def run(event: Event) -> Value:
            return [get(event) for get in getters]

        return _Compiled(run, frozenset({LIST}))

    # -- comparisons

    def _compare(self, node: Compare) -> _Compiled:
        operands = [self.compile(node.first), *(self.compile(n) for _, _, n in node.rest)]
        for (op, pos, _), left, right in zip(node.rest, operands, operands[1:], strict=False):
            if not compare_allowed(op, left.kinds, right.kinds):
                verb = "test whether" if op in ("in", "not in") else "compare"
                raise _refuse(
                    f"cannot {verb} {describe(left.kinds)} {op} {describe(right.kinds)}", pos
                )
        run: Evaluator
        if len(node.rest) == 1:
            run = _comparison(node.rest[0][0], operands[0], operands[1])
        else:
            run = _chain(tuple(op for op, _, _ in node.rest), tuple(o.run for o in operands))
        if all(operand.constant for operand in operands):
            return self._fold(run, node.pos)
        return _Compiled(run, _BOOL)

    # -- calls

    def _call(self, node: Call) -> _Compiled:
        function = FUNCTIONS.get(node.function)
        if function is None:
            if node.function in _FIELDS:
                raise _refuse(f"'{node.function}' is not a function", node.pos)
            hint = _did_you_mean(node.function, FUNCTIONS) or (
                f"; the functions are {', '.join(FUNCTIONS)}"
            )
            raise _refuse(f"unknown function '{node.function}'{hint}", node.pos)
        if not function.takes(len(node.args)):
            raise _refuse(
                f"{function.name}() takes {function.arity}, got {len(node.args)}", node.pos
            )
        args = [self.compile(arg) for arg in node.args]
        for index, (arg, arg_node) in enumerate(zip(args, node.args, strict=True)):
            accepted = function.accepts(index)
            if not arg.kinds & accepted:
                raise _refuse(
                    f"{function.name}() argument {index + 1} must be {describe(accepted)}, "
                    f"not {describe(arg.kinds)}",
                    arg_node.pos,
                )
        kinds = function.result
        if function.name == "coalesce":
            run = _coalesce(tuple(arg.run for arg in args))
            kinds = frozenset().union(*(arg.kinds - {NULL} for arg in args)) | (
                args[-1].kinds & {NULL}
            )
        else:
            run = _call(function, tuple(arg.run for arg in args))
        if all(arg.constant for arg in args):
            return self._fold(run, node.pos)
        return _Compiled(run, kinds or ANY)


# ---------------------------------------------------- closures for the hot path


def _comparison(op: str, left: _Compiled, right: _Compiled) -> Evaluator:
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


def _chain(ops: tuple[str, ...], getters: tuple[Evaluator, ...]) -> Evaluator:
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


def _call(function: Function, getters: tuple[Evaluator, ...]) -> Evaluator:
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


def _coalesce(getters: tuple[Evaluator, ...]) -> Evaluator:
    def run(event: Event) -> Value:
        for get in getters:
            value = get(event)
            if value is not None:
                return value
        return None

    return run
