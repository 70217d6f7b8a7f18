"""Tokenizer and parser of the rule expression language (see ``tidegate.rules.expr.compiler``).

The text becomes a small tree of the node classes below. Every construct the
parser accepts is listed here on purpose; anything else is refused with an
``ExpressionError`` that carries the 1-based line and column of the offending
token. Hostile input is bounded before and during parsing: the text length is
capped, and the parser counts its own recursion and the depth of the tree it
builds, so no input can reach Python's recursion limit or allocate much.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, NoReturn, TypeAlias

from tidegate.errors import TidegateError

MAX_LENGTH = 1000
"""Longest expression text accepted, in characters."""

MAX_DEPTH = 100
"""Deepest nesting accepted: parentheses, brackets, calls and operator chains."""

_INT_LIMIT = 2**63


class ExpressionError(TidegateError):
    """An expression was refused at load: ``message`` at ``line``:``column`` (1-based).

    The position is within the expression text; the config loader adds the
    position of the text in its YAML file.
    """

    exit_code = 2

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(f"{line}:{column}: {message}")


class Pos(NamedTuple):
    line: int
    column: int


# ----------------------------------------------------------------- the tree


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


# ------------------------------------------------------------ the tokenizer


class Token(NamedTuple):
    kind: str  # 'num', 'str', 'name', 'op', 'end'
    text: str
    value: object
    pos: Pos


# ASCII only: str.isdigit() and \d also accept '¹' or '٣', which are not numbers here.
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS = frozenset("0123456789")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (
    "**",
    "//",
    "==",
    "!=",
    "<=",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "<",
    ">",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
)
_WHITESPACE = " \t\r\n\f"
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_STRING_PREFIXES = {"f", "r", "b", "u", "rb", "br", "fr", "rf"}

# Characters that are not part of the language, with the message that says why.
_REFUSED = {
    ":=": "':=' (assignment) is not supported",
    "&&": "'&&' is not an operator; use 'and'",
    "||": "'||' is not an operator; use 'or'",
    "<<": "bitwise operators are not supported",
    ">>": "bitwise operators are not supported",
    "=": "'=' is not a comparison; use '=='",
    "!": "'!' is not an operator; use 'not' or '!='",
    "&": "bitwise operators are not supported",
    "|": "bitwise operators are not supported",
    "^": "bitwise operators are not supported; use '**' for powers",
    "~": "bitwise operators are not supported",
    "{": "mapping literals and sets ({...}) are not supported",
    "}": "mapping literals and sets ({...}) are not supported",
    ":": "':' is not supported (no slices, lambdas or mappings)",
    ";": "only one expression is allowed",
    "@": "'@' is not supported",
    "#": "comments are not supported in expressions",
    "\\": "'\\' is only allowed inside strings; an expression may span lines without it",
    "`": "'`' is not supported",
    "$": "'$' is not supported",
    "?": "'?' is not supported; write 'a if condition else b'",
}


def _fail(message: str, pos: Pos) -> NoReturn:
    raise ExpressionError(message, pos.line, pos.column)


def tokenize(text: str) -> Iterator[Token]:
    """Yield the tokens of ``text``, then an 'end' token.

    Lazily, so that an error is reported at the first thing that is wrong, as
    the parser reads: ``lambda x: x`` fails at ``lambda``, not at ``:``.
    """
    line, line_start, i, n = 1, 0, 0, len(text)
    while i < n:
        ch = text[i]
        pos = Pos(line, i - line_start + 1)
        if ch in _WHITESPACE:
            if ch == "\n":
                line, line_start = line + 1, i + 1
            i += 1
            continue
        if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            match = _NUMBER.match(text, i)
            assert match is not None  # the first character is a digit or '.digit'
            end = match.end()
            # '1_000', '1.real', '0x10', '1..2': refused whole rather than split in two tokens.
            if end < n and (text[end].isalnum() or text[end] in "_."):
                stop = end
                while stop < n and (text[stop].isalnum() or text[stop] in "_."):
                    stop += 1
                _fail(f"malformed number {text[i:stop]!r}", pos)
            literal = match.group()
            yield Token("num", literal, _number_value(literal, pos), pos)
            i = end
            continue
        if ch in "'\"":
            value, end, line, line_start = _scan_string(text, i, line, line_start)
            yield Token("str", text[i:end], value, pos)
            i = end
            continue
        if ch.isalpha() or ch == "_":
            match = _IDENTIFIER.match(text, i)
            if match is None:  # a non-ASCII letter
                _fail(f"unexpected character {ch!r}; names are ASCII letters, digits and '_'", pos)
            word = match.group()
            if match.end() < n and text[match.end()] in "'\"" and word.lower() in _STRING_PREFIXES:
                _fail(f"string prefix {word!r} is not supported (no f-, raw or byte strings)", pos)
            yield Token("name", word, word, pos)
            i = match.end()
            continue
        for refused, message in _REFUSED.items():
            if text.startswith(refused, i) and not any(
                text.startswith(op, i) and len(op) >= len(refused) for op in _OPERATORS
            ):
                _fail(message, pos)
        for op in _OPERATORS:
            if text.startswith(op, i):
                yield Token("op", op, op, pos)
                i += len(op)
                break
        else:
            _fail(f"unexpected character {ch!r}", pos)
    yield Token("end", "", None, Pos(line, n - line_start + 1))


def _number_value(literal: str, pos: Pos) -> int | float:
    if any(c in literal for c in ".eE"):
        value = float(literal)
        if not math.isfinite(value):
            _fail(f"number {literal} is too large", pos)
        return value
    number = int(literal)  # at most MAX_LENGTH digits: far below int()'s own digit limit
    if number >= _INT_LIMIT:
        _fail(f"integer {literal} is too large (the limit is 2**63 - 1)", pos)
    return number


def _scan_string(text: str, start: int, line: int, line_start: int) -> tuple[str, int, int, int]:
    """Read the quoted string at ``start``; return its value, its end, and the new line counters."""
    quote, i, n = text[start], start + 1, len(text)
    parts: list[str] = []
    opening = Pos(line, start - line_start + 1)
    while i < n:
        ch = text[i]
        if ch == quote:
            return "".join(parts), i + 1, line, line_start
        if ch == "\n":
            line, line_start = line + 1, i + 1
        if ch == "\\":
            escape = text[i + 1 : i + 2]
            if escape in _ESCAPES:
                parts.append(_ESCAPES[escape])
                i += 2
                continue
            if escape == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
                parts.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            _fail(
                f"unknown escape {text[i : i + 2]!r} in a string; "
                "known: \\\\ \\' \\\" \\n \\t \\r \\uXXXX",
                Pos(line, i - line_start + 1),
            )
        parts.append(ch)
        i += 1
    _fail("unterminated string", opening)


# --------------------------------------------------------------- the parser

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
            _fail("empty expression", self._peek().pos)
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
                _fail(_PYTHON_KEYWORDS[token.text], token.pos)
            if token.text in _STATEMENT_WORDS:
                _fail(f"'{token.text}' is not supported in expressions", token.pos)
        found = {
            "end": "end of the expression",
            "num": f"number {token.text}",
            "str": f"string {token.text}",
            "name": f"'{token.text}'",
            "op": f"'{token.text}'",
        }[token.kind]
        _fail(f"unexpected {found} ({context})" if context else f"unexpected {found}", token.pos)

    # -- the Pratt loop

    def _expression(self, right_power: int) -> Node:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            _fail(
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
            _fail("unexpected end of the expression", token.pos)
        op = token.text
        if op in ("-", "+"):
            return Unary(op, self._expression(_UNARY), token.pos)
        if op == "(":
            if self._at(")"):
                _fail("empty parentheses are not supported (there are no tuples)", token.pos)
            inner = self._expression(0)
            if self._at(","):
                _fail("tuples are not supported; write a list [a, b]", self._peek().pos)
            self._expect(")", "to close '('")
            return inner
        if op == "[":
            return ListLiteral(self._sequence("]"), token.pos)
        if op in ("*", "**"):
            _fail("starred expressions (*x, **x) are not supported", token.pos)
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
            _fail("only library functions can be called, as in abs(x)", token.pos)
        if op == "[":
            _fail("subscripts ([...]) are not supported; use value.key or tags.key", token.pos)
        if op == ".":
            _fail("'.' may only follow value or tags, as in value.humidity", token.pos)
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
        _fail(f"names starting with '__' are not allowed ({token.text})", token.pos)


def _check_depth(root: Node) -> None:
    """Refuse trees deeper than MAX_DEPTH; iterative, so it cannot recurse too deeply itself."""
    pending: deque[tuple[Node, int]] = deque([(root, 1)])
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            _fail(f"expression is nested too deeply (the limit is {MAX_DEPTH} levels)", node.pos)
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
