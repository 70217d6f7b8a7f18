"""The tree of a parsed expression: one node class per construct the language has.

Each node keeps the position of its text (for a binary operation, of the
operator), so the compiler can point at the part it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from tidegate.rules.expr.errors import Pos


@dataclass(frozen=True, slots=True)
class Const:
    value: object
    pos: Pos


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class Attribute:
    """``base.key``: the only kind of ``.`` the language has (``value.x``, ``tags.x``)."""

    base: str
    key: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # '-', '+', 'not'
    operand: Node
    pos: Pos


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # '+', '-', '*', '/', '//', '%', '**'
    left: Node
    right: Node
    pos: Pos  # of the operator


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # 'and', 'or'
    left: Node
    right: Node
    pos: Pos


@dataclass(frozen=True, slots=True)
class Compare:
    """A comparison chain ``a < b <= c``: ``rest`` holds (operator, its position, operand)."""

    first: Node
    rest: tuple[tuple[str, Pos, Node], ...]
    pos: Pos


@dataclass(frozen=True, slots=True)
class Conditional:
    then: Node
    test: Node
    orelse: Node
    pos: Pos  # of 'if'


@dataclass(frozen=True, slots=True)
class ListLiteral:
    items: tuple[Node, ...]
    pos: Pos


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Node, ...]
    pos: Pos  # of the function name


Node: TypeAlias = (
    Const | Name | Attribute | Unary | Binary | BoolOp | Compare | Conditional | ListLiteral | Call
)


def children(node: Node) -> tuple[Node, ...]:
    """The nodes directly below ``node``, in the order of the text."""
    match node:
        case Unary(operand=operand):
            return (operand,)
        case Binary(left=left, right=right) | BoolOp(left=left, right=right):
            return (left, right)
        case Compare(first=first, rest=rest):
            return (first, *(operand for _, _, operand in rest))
        case Conditional(then=then, test=test, orelse=orelse):
            return (then, test, orelse)
        case ListLiteral(items=items) | Call(args=items):
            return items
        case _:
            return ()
