"""Numbers in config files: read by YAML 1.2's core schema, and bounded.

PyYAML reads YAML 1.1, where a plain ``1:1:1:…`` is an integer in base 60
("sexagesimal"): converting it costs time quadratic in its length (400 KB of
it took 12.5 s), and an innocent ``12:30`` becomes 750. YAML 1.2 dropped base
60; its core schema, used here, reads as numbers only:

- integers: ``[-+]?[0-9]+`` (decimal, leading zeros included), ``0o17``
  (octal), ``0x1F`` (hex);
- floats: ``1.5``, ``1e3``, ``-.5``, ``2.``, ``.inf``, ``-.inf``, ``.nan``.

Everything else that YAML 1.1 took for a number (``12:30``, ``0b101``,
``1_000``) is text. Booleans, nulls and dates are left as PyYAML reads them.

Before converting, a number longer than ``MAX_NUMBER_CHARS`` is refused (no
setting needs one; Python's own int conversion would refuse 4,300 digits
with a traceback), and after it an integer beyond 64 bits or a float beyond
the float range (``1e400``, which would silently become infinity): what
uses these values (SQLite, durations, sizes) cannot hold more.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"

MAX_NUMBER_CHARS = 100
"""Longest text read as a number."""
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)


class NumberRefused(ValueError):
    """A number beyond the limits; the caller adds the position."""


def _shown(text: str) -> str:
    """The number as it can be quoted in a message (never all of a huge one)."""
    return text if len(text) <= 24 else text[:12] + "…"


def _number_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    text = loader.construct_scalar(node)
    if len(text) > MAX_NUMBER_CHARS:
        raise NumberRefused(
            f"the number {_shown(text)} has {len(text):,} characters; at most "
            f"{MAX_NUMBER_CHARS} are read as a number (quote it if it is text)"
        )
    return text


def construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = _number_text(loader, node)
    if not _INT.fullmatch(text):
        raise ValueError("a YAML 1.2 integer is decimal, 0o octal or 0x hex")
    if text.startswith(("0o", "0x")):
        value = int(text[2:], 8 if text[1] == "o" else 16)
    else:
        value = int(text, 10)
    if not INT_MIN <= value <= INT_MAX:
        raise NumberRefused(
            f"the integer {_shown(text)} is beyond the 64-bit integer range "
            f"({INT_MIN:,} to {INT_MAX:,})"
        )
    return value


def construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = _number_text(loader, node)
    if not _FLOAT.fullmatch(text):
        raise ValueError("not a YAML 1.2 number")
    named = text.lower()
    if named.endswith((".inf", ".nan")):
        return float(named.replace(".", ""))  # "-inf", "+inf", "inf", "nan"
    value = float(text)
    if math.isinf(value):
        raise NumberRefused(
            f"the number {_shown(text)} is beyond the range of a floating-point number "
            "(about ±1.8e308; write .inf for infinity)"
        )
    return value


def core_schema_resolvers(table: dict[Any, Any]) -> dict[Any, Any]:
    """A copy of PyYAML's implicit resolvers with YAML 1.2 core int and float in place of 1.1's.

    ``table`` maps a scalar's first character to ``(tag, regexp)`` pairs tried
    in order; int before float, as the core schema says (``12`` is an int).
    """
    out = {
        first: [(tag, regexp) for tag, regexp in pairs if tag not in (INT_TAG, FLOAT_TAG)]
        for first, pairs in table.items()
    }
    # Anchored at both ends: the resolver only calls .match(), and "$" would let
    # a trailing newline through.
    whole_int = re.compile(rf"(?:{_INT.pattern})\Z")
    whole_float = re.compile(rf"(?:{_FLOAT.pattern})\Z")
    for first in "-+0123456789":
        out.setdefault(first, []).append((INT_TAG, whole_int))
    for first in "-+.0123456789":
        out.setdefault(first, []).append((FLOAT_TAG, whole_float))
    return out
