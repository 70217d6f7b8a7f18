"""The compiler of the expression language: a parsed tree to closures over the event.

On the way it checks what can be checked at load: that every name is an
event field and every call a known function with the right number and kinds
of arguments, and that every operation is defined for the kinds its operands
can have (``name * 2.5`` is refused). Parts made only of constants are
evaluated now, so their errors (``1 / 0``) are load errors too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from operator import attrgetter

from tidegate.event import Event
from tidegate.rules.expr.closures import (
    Compiled,
    Evaluator,
    call,
    chain,
    coalesce,
    comparison,
    compiled_constant,
)
from tidegate.rules.expr.errors import ExpressionError, ExpressionRuntimeError, Pos, refused
from tidegate.rules.expr.expression import Expression
from tidegate.rules.expr.functions import FUNCTIONS
from tidegate.rules.expr.nodes import (
    Attribute,
    Binary,
    BoolOp,
    Call,
    Compare,
    Conditional,
    Const,
    ListLiteral,
    Name,
    Node,
    Unary,
)
from tidegate.rules.expr.operators import (
    ARITHMETIC,
    UNARY,
    binary_kinds,
    compare_allowed,
    unary_kinds,
)
from tidegate.rules.expr.parser import parse
from tidegate.rules.expr.values import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    LIST,
    MAPPING,
    NULL,
    NUMBER,
    SCALAR,
    STRING,
    Kinds,
    Value,
    describe,
    kind_of,
)


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


_FOLDING_EVENT = Event(source="", name="", value=0, time=0.0, id="")
"""Passed to closures over constants when folding them; they never read it."""

_BOOL: Kinds = frozenset({BOOL})
_STRING: Kinds = frozenset({STRING})


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


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _union(parts: Iterable[Compiled]) -> Kinds:
    return frozenset().union(*(part.kinds for part in parts))


class _Compiler:
    """Turns a tree into closures, checking kinds and folding constants on the way."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def compile(self, node: Node) -> Compiled:
        match node:
            case Const(value=value):
                return compiled_constant(value)
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
    def _fold(run: Evaluator, pos: Pos) -> Compiled:
        """Evaluate a closure over constants now; its error is then a load error at ``pos``."""
        try:
            value = run(_FOLDING_EVENT)
        except ExpressionRuntimeError as exc:
            raise refused(str(exc), pos) from None
        return compiled_constant(value)

    # -- names and fields

    def _unknown_name(self, word: str, pos: Pos) -> ExpressionError:
        if word in FUNCTIONS:
            return refused(f"'{word}' is a function; call it as {word}(...)", pos)
        hint = _did_you_mean(word, _SUGGESTIBLE_NAMES) or (
            f"; the event's fields are {', '.join(_FIELDS)}"
        )
        return refused(f"unknown name '{word}'{hint}", pos)

    def _name(self, node: Name) -> Compiled:
        if node.name not in _FIELDS:
            raise self._unknown_name(node.name, node.pos)
        self.names.add(node.name)
        run, kinds = _FIELDS[node.name]
        return Compiled(run, kinds)

    def _attribute(self, node: Attribute) -> Compiled:
        base, key = node.base, node.key
        if base not in _FIELDS:
            raise self._unknown_name(base, node.pos)
        self.names.add(f"{base}.{key}")
        if base == "tags":

            def tag(event: Event) -> Value:
                tags = event.tags
                return tags.get(key) if tags else None

            return Compiled(tag, frozenset({STRING, NULL}))
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

            return Compiled(entry, SCALAR)
        raise refused(f"'{base}' has no keys; only value and tags do (value.x, tags.x)", node.pos)

    # -- operators

    def _unary(self, node: Unary) -> Compiled:
        operand = self.compile(node.operand)
        inner = operand.run
        if node.op == "not":

            def negation(event: Event) -> Value:
                return not inner(event)

            run, kinds = negation, _BOOL
        else:
            kinds = unary_kinds(node.op, operand.kinds)
            if not kinds:
                raise refused(f"cannot apply '{node.op}' to {describe(operand.kinds)}", node.pos)
            op = UNARY[node.op]

            def arithmetic(event: Event) -> Value:
                return op(inner(event))

            run = arithmetic
        if operand.constant:
            return self._fold(run, node.pos)
        return Compiled(run, kinds)

    def _binary(self, node: Binary) -> Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        kinds = binary_kinds(node.op, left.kinds, right.kinds)
        if not kinds:
            raise refused(
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
        return Compiled(run, kinds)

    def _bool_op(self, node: BoolOp) -> Compiled:
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

        return Compiled(run, _union((left, right)))

    def _conditional(self, node: Conditional) -> Compiled:
        then, test, orelse = (self.compile(n) for n in (node.then, node.test, node.orelse))
        if test.constant:
            return then if test.value else orelse
        get_then, get_test, get_else = then.run, test.run, orelse.run

        def run(event: Event) -> Value:
            return get_then(event) if get_test(event) else get_else(event)

        return Compiled(run, _union((then, orelse)))

    def _list(self, node: ListLiteral) -> Compiled:
        items = [self.compile(item) for item in node.items]
        if all(item.constant for item in items):
            return compiled_constant([item.value for item in items])
        getters = tuple(item.run for item in items)

        def run(event: Event) -> Value:
            return [get(event) for get in getters]

        return Compiled(run, frozenset({LIST}))

    # -- comparisons

    def _compare(self, node: Compare) -> Compiled:
        operands = [self.compile(node.first), *(self.compile(n) for _, _, n in node.rest)]
        for (op, pos, _), left, right in zip(node.rest, operands, operands[1:], strict=False):
            if not compare_allowed(op, left.kinds, right.kinds):
                verb = "test whether" if op in ("in", "not in") else "compare"
                raise refused(
                    f"cannot {verb} {describe(left.kinds)} {op} {describe(right.kinds)}", pos
                )
        run: Evaluator
        if len(node.rest) == 1:
            run = comparison(node.rest[0][0], operands[0], operands[1])
        else:
            run = chain(tuple(op for op, _, _ in node.rest), tuple(o.run for o in operands))
        if all(operand.constant for operand in operands):
            return self._fold(run, node.pos)
        return Compiled(run, _BOOL)

    # -- calls

    def _call(self, node: Call) -> Compiled:
        function = FUNCTIONS.get(node.function)
        if function is None:
            if node.function in _FIELDS:
                raise refused(f"'{node.function}' is not a function", node.pos)
            hint = _did_you_mean(node.function, FUNCTIONS) or (
                f"; the functions are {', '.join(FUNCTIONS)}"
            )
            raise refused(f"unknown function '{node.function}'{hint}", node.pos)
        if not function.takes(len(node.args)):
            raise refused(
                f"{function.name}() takes {function.arity}, got {len(node.args)}", node.pos
            )
        args = [self.compile(arg) for arg in node.args]
        for index, (arg, arg_node) in enumerate(zip(args, node.args, strict=True)):
            accepted = function.accepts(index)
            if not arg.kinds & accepted:
                raise refused(
                    f"{function.name}() argument {index + 1} must be {describe(accepted)}, "
                    f"not {describe(arg.kinds)}",
                    arg_node.pos,
                )
        kinds = function.result
        if function.name == "coalesce":
            run = coalesce(tuple(arg.run for arg in args))
            kinds = frozenset().union(*(arg.kinds - {NULL} for arg in args)) | (
                args[-1].kinds & {NULL}
            )
        else:
            run = call(function, tuple(arg.run for arg in args))
        if all(arg.constant for arg in args):
            return self._fold(run, node.pos)
        return Compiled(run, kinds or ANY)
