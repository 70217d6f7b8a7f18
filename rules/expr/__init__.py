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
(``lexer``, ``parser``), not by Python's ``ast``. The grammar is a small
subset, so the parser is short and every construct it accepts is accepted on
purpose; its cost on hostile input is bounded by us (at most 1,000 characters
and 100 levels of nesting, counted before Python's recursion limit could be
reached), whereas ``ast.parse``'s failure modes on deep nesting
(RecursionError, MemoryError, "too many nested parentheses") depend on the
Python version; its columns are byte offsets where ours are characters; and
``true``/``null`` are names to it. The tree (``nodes``) is then compiled
(``compiler``) into nested Python closures (``closures``) with the constants
folded in and the common shapes (``value > 30``, ``tags.room in [...]``)
specialised, so evaluating does not walk the tree again. Nothing is ever
passed to ``eval``, ``exec`` or ``compile``, and the only callables reachable
are the operations of ``operators`` and the functions above (``functions``,
``numeric``), on the values of ``values``. ``location`` places a refused
expression's line and column in its YAML file.

The names this package exports (``__all__`` below) are its public API: other
packages import them from ``tidegate.rules.expr``, not from the modules inside.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidegate.rules.expr.compiler import compile_expression
    from tidegate.rules.expr.errors import ExpressionError, ExpressionRuntimeError
    from tidegate.rules.expr.expression import Expression
    from tidegate.rules.expr.functions import FUNCTIONS, Function
    from tidegate.rules.expr.location import expression_error, split_expression_errors
    from tidegate.rules.expr.parser import MAX_DEPTH, MAX_LENGTH
    from tidegate.rules.expr.values import MAX_STRING, render

_HOMES = {
    "compile_expression": "compiler",
    "ExpressionError": "errors",
    "ExpressionRuntimeError": "errors",
    "Expression": "expression",
    "FUNCTIONS": "functions",
    "Function": "functions",
    "expression_error": "location",
    "split_expression_errors": "location",
    "MAX_DEPTH": "parser",
    "MAX_LENGTH": "parser",
    "MAX_STRING": "values",
    "render": "values",
}
"""Public name → its module. Loaded on first use, so a gateway without rules never loads
the parser and compiler (catching ``ExpressionRuntimeError`` needs only ``errors``)."""


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_STRING",
    "Expression",
    "ExpressionError",
    "ExpressionRuntimeError",
    "Function",
    "compile_expression",
    "expression_error",
    "render",
    "split_expression_errors",
]
