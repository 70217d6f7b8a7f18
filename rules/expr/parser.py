"""The parser of the expression language: tokens to a tree (``nodes``), by Pratt's method.

Every construct the parser accepts is accepted on purpose; anything else is
refused with an ``ExpressionError`` that carries the 1-based line and column
of the offending token, and Python constructs the language lacks get a
message saying so (``lambda is not supported``). Hostile input is bounded
before and during parsing: the text length is capped, and the parser counts
its own recursion and the depth of the tree it builds, so no input can reach
Python's recursion limit or allocate much.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import NoReturn

from tidegate.rules.expr.errors import ExpressionError, Pos, fail
from tidegate.rules.expr.lexer import Token, tokenize
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
    children,
)

MAX_LENGTH = 1000
"""Longest expression text accepted, in characters."""

MAX_DEPTH = 100
"""Deepest nesting accepted: parentheses, brackets, calls and operator chains."""


# Binding powers, Python's precedence from loosest to tightest.
_CONDITIONAL, _OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _POWER, _POSTFIX = (
    10,
    20,
    30,
    40,
    50,
    60,
    70,
    80,
    90,
    100,
)
_INFIX_OPS = {
    **dict.fromkeys(("+", "-"), _SUM),
    **dict.fromkeys(("*", "/", "//", "%"), _PRODUCT),
    "**": _POWER,
    **dict.fromkeys(("==", "!=", "<", "<=", ">", ">="), _COMPARE),
    **dict.fromkeys(("(", "[", "."), _POSTFIX),
}
_INFIX_WORDS = {"or": _OR, "and": _AND, "in": _COMPARE, "not": _COMPARE, "if": _CONDITIONAL}
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
LITERAL_WORDS: dict[str, object] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
KEYWORDS = frozenset({"and", "or", "not", "in", "if", "else", *LITERAL_WORDS})

_PYTHON_KEYWORDS = {
    "lambda": "lambda is not supported",
    "for": "comprehensions (for ... in ...) are not supported",
    "is": "'is' is not supported; use '==' or '!='",
    "await": "'await' is not supported",
    "yield": "'yield' is not supported",
}
_STATEMENT_WORDS = frozenset(
    {
        "import",
        "from",
        "def",
        "class",
        "return",
        "del",
        "global",
        "nonlocal",
        "assert",
        "pass",
        "raise",
        "try",
        "except",
        "finally",
        "while",
        "with",
        "as",
        "async",
        "break",
        "continue",
        "elif",
    }
)


class _Parser:
    """A Pratt parser over the token list; ``_depth`` counts its own recursion."""

    def __init__(self, tokens: Iterator[Token]) -> None:
        self._tokens = tokens
        self._token = next(tokens)
        self._depth = 0

    def parse(self) -> Node:
        if self._peek().kind == "end":
            fail("empty expression", self._peek().pos)
        node = self._expression(0)
        token = self._peek()
        if token.kind != "end":
            self._unexpected(token, "after a complete expression")
        return node

    # -- token helpers

    def _peek(self) -> Token:
        return self._token

    def _next(self) -> Token:
        token = self._token
        if token.kind != "end":
            self._token = next(self._tokens)
        return token

    def _at(self, text: str, kind: str = "op") -> bool:
        return self._token.kind == kind and self._token.text == text

    def _expect(self, text: str, context: str, kind: str = "op") -> Token:
        if not self._at(text, kind):
            self._unexpected(self._peek(), f"expected '{text}' {context}")
        return self._next()

    def _unexpected(self, token: Token, context: str) -> NoReturn:
        if token.kind == "name":
            if token.text in _PYTHON_KEYWORDS:
                fail(_PYTHON_KEYWORDS[token.text], token.pos)
            if token.text in _STATEMENT_WORDS:
                fail(f"'{token.text}' is not supported in expressions", token.pos)
        found = {
            "end": "end of the expression",
            "num": f"number {token.text}",
            "str": f"string {token.text}",
            "name": f"'{token.text}'",
            "op": f"'{token.text}'",
        }[token.kind]
        fail(f"unexpected {found} ({context})" if context else f"unexpected {found}", token.pos)

    # -- the Pratt loop

    def _expression(self, right_power: int) -> Node:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            fail(
                f"expression is nested too deeply (the limit is {MAX_DEPTH} levels)",
                self._peek().pos,
            )
        left = self._prefix(self._next())
        while True:
            token = self._peek()
            if token.kind == "op":
                power = _INFIX_OPS.get(token.text, 0)
            elif token.kind == "name":
                power = _INFIX_WORDS.get(token.text, 0)
            else:
                power = 0
            if power <= right_power:
                break
            self._next()
            left = self._infix(token, left)
        self._depth -= 1
        return left

    def _prefix(self, token: Token) -> Node:
        if token.kind in ("num", "str"):
            return Const(token.value, token.pos)
        if token.kind == "name":
            return self._word(token)
        if token.kind == "end":
            fail("unexpected end of the expression", token.pos)
        op = token.text
        if op in ("-", "+"):
            return Unary(op, self._expression(_UNARY), token.pos)
        if op == "(":
            if self._at(")"):
                fail("empty parentheses are not supported (there are no tuples)", token.pos)
            inner = self._expression(0)
            if self._at(","):
                fail("tuples are not supported; write a list [a, b]", self._peek().pos)
            self._expect(")", "to close '('")
            return inner
        if op == "[":
            return ListLiteral(self._sequence("]"), token.pos)
        if op in ("*", "**"):
            fail("starred expressions (*x, **x) are not supported", token.pos)
        self._unexpected(token, "")

    def _word(self, token: Token) -> Node:
        word = token.text
        if word in LITERAL_WORDS:
            return Const(LITERAL_WORDS[word], token.pos)
        if word == "not":
            return Unary("not", self._expression(_NOT), token.pos)
        if word in KEYWORDS or word in _PYTHON_KEYWORDS or word in _STATEMENT_WORDS:
            self._unexpected(token, "")
        _refuse_dunder(token)
        if self._at("("):
            self._next()
            return Call(word, self._sequence(")"), token.pos)
        if self._at("."):
            self._next()
            key = self._next()
            if key.kind != "name":
                self._unexpected(key, f"expected a key name after '{word}.'")
            _refuse_dunder(key)
            return Attribute(word, key.text, token.pos)
        return Name(word, token.pos)

    def _sequence(self, closing: str) -> tuple[Node, ...]:
        """Comma-separated expressions up to ``closing`` (call arguments, list items)."""
        items: list[Node] = []
        while not self._at(closing):
            items.append(self._expression(0))
            if not self._at(","):
                break
            self._next()
        self._expect(closing, f"or ',' to continue the {'list' if closing == ']' else 'arguments'}")
        return tuple(items)

    def _infix(self, token: Token, left: Node) -> Node:
        op = token.text
        if token.kind == "name":
            if op in ("and", "or"):
                return BoolOp(op, left, self._expression(_INFIX_WORDS[op]), token.pos)
            if op == "if":
                test = self._expression(_CONDITIONAL)
                self._expect("else", "after 'a if condition'", kind="name")
                return Conditional(left, test, self._expression(_CONDITIONAL - 1), token.pos)
            return self._comparison(token, left)
        if op in _COMPARISONS:
            return self._comparison(token, left)
        if op == "(":
            fail("only library functions can be called, as in abs(x)", token.pos)
        if op == "[":
            fail("subscripts ([...]) are not supported; use value.key or tags.key", token.pos)
        if op == ".":
            fail("'.' may only follow value or tags, as in value.humidity", token.pos)
        # '**' is right-associative: its right side binds one step looser than itself.
        power = _POWER - 1 if op == "**" else _INFIX_OPS[op]
        return Binary(op, left, self._expression(power), token.pos)

    def _comparison(self, token: Token, left: Node) -> Node:
        rest: list[tuple[str, Pos, Node]] = []
        while True:
            op = token.text
            if op == "not":
                self._expect("in", "after 'not' in a comparison", kind="name")
                op = "not in"
            rest.append((op, token.pos, self._expression(_COMPARE)))
            token = self._peek()
            if not (
                (token.kind == "op" and token.text in _COMPARISONS)
                or (token.kind == "name" and token.text in ("in", "not"))
            ):
                return Compare(left, tuple(rest), rest[0][1])
            self._next()


def _refuse_dunder(token: Token) -> None:
    if token.text.startswith("__"):
        fail(f"names starting with '__' are not allowed ({token.text})", token.pos)


def _check_depth(root: Node) -> None:
    """Refuse trees deeper than MAX_DEPTH; iterative, so it cannot recurse too deeply itself."""
    pending: deque[tuple[Node, int]] = deque([(root, 1)])
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            fail(f"expression is nested too deeply (the limit is {MAX_DEPTH} levels)", node.pos)
        pending.extend((child, depth + 1) for child in children(node))


def parse(text: str) -> Node:
    """Parse expression ``text`` into a tree, or raise ExpressionError."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(text)} characters; the limit is {MAX_LENGTH})"
        )
    tree = _Parser(tokenize(text)).parse()
    _check_depth(tree)
    return tree
