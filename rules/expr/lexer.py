"""The tokenizer of the expression language: text to tokens, each with its position.

Numbers are ASCII digits only, strings take a short list of escapes, and names
are ASCII. Characters that belong to Python but not to the language are
refused here with a message saying what to write instead (``&&``: use
``and``), at the first thing that is wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import NamedTuple

from tidegate.rules.expr.errors import Pos, fail

_INT_LIMIT = 2**63


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
                fail(f"malformed number {text[i:stop]!r}", pos)
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
                fail(f"unexpected character {ch!r}; names are ASCII letters, digits and '_'", pos)
            word = match.group()
            if match.end() < n and text[match.end()] in "'\"" and word.lower() in _STRING_PREFIXES:
                fail(f"string prefix {word!r} is not supported (no f-, raw or byte strings)", pos)
            yield Token("name", word, word, pos)
            i = match.end()
            continue
        for refused, message in _REFUSED.items():
            if text.startswith(refused, i) and not any(
                text.startswith(op, i) and len(op) >= len(refused) for op in _OPERATORS
            ):
                fail(message, pos)
        for op in _OPERATORS:
            if text.startswith(op, i):
                yield Token("op", op, op, pos)
                i += len(op)
                break
        else:
            fail(f"unexpected character {ch!r}", pos)
    yield Token("end", "", None, Pos(line, n - line_start + 1))


def _number_value(literal: str, pos: Pos) -> int | float:
    if any(c in literal for c in ".eE"):
        value = float(literal)
        if not math.isfinite(value):
            fail(f"number {literal} is too large", pos)
        return value
    number = int(literal)  # at most MAX_LENGTH digits: far below int()'s own digit limit
    if number >= _INT_LIMIT:
        fail(f"integer {literal} is too large (the limit is 2**63 - 1)", pos)
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
            fail(
                f"unknown escape {text[i : i + 2]!r} in a string; "
                "known: \\\\ \\' \\\" \\n \\t \\r \\uXXXX",
                Pos(line, i - line_start + 1),
            )
        parts.append(ch)
        i += 1
    fail("unterminated string", opening)
