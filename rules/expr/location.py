"""Where in the YAML file an expression error is: the expression's position plus the offset.

An expression is refused with a line and column *inside its text*
(``ExpressionError``). The rule schema reports it as a pydantic error of type
``expression`` carrying that offset; ``split_expression_errors`` turns those
into ``FILE:LINE:COL: path: message`` lines pointing at the offending
character, and hands the other errors back for the config loader's usual
translation.

To add the offset we need the scalar's style, which the parsed data no longer
shows: the source line is read again. Plain and quoted one-line scalars, and
``|`` / ``>`` block scalars, map exactly; inside a quoted scalar that uses
escapes, or a multi-line flow scalar, the column can be off by a few
characters (never the line). Without the file (config given as text), the
position is the scalar's start.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from tidegate.config.yaml_source import PathKey, Position, SourceMap
from tidegate.rules.expr.errors import ExpressionError

EXPRESSION_ERROR = "expression"
"""The pydantic error type of an expression refused at load."""

_CORE_ERROR_TYPES = frozenset(typing.get_args(ErrorType))


def expression_error(exc: ExpressionError) -> PydanticCustomError:
    """The pydantic error a schema validator raises for a refused expression."""
    return PydanticCustomError(
        EXPRESSION_ERROR,
        "{message}",
        {"message": exc.message, "line": exc.line, "column": exc.column},
    )


def _label(path: Sequence[str | int]) -> str:
    out = ""
    for elem in path:
        out += f"[{elem}]" if isinstance(elem, int) else (f".{elem}" if out else str(elem))
    return out


def _source_lines(file: str) -> list[str] | None:
    try:
        return Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_position(lines: list[str], start: Position, line: int, column: int) -> Position:
    """``|`` keeps lines; ``>`` folds them into one: find the file line holding the offset."""
    header = lines[start.line - 1][start.col - 1 :].lstrip()
    folded = header.startswith(">")
    content: list[int] = []  # 0-based file line numbers of the block's lines
    indent: int | None = None
    for number in range(start.line, len(lines)):
        text = lines[number]
        if not text.strip():
            if indent is not None:
                content.append(number)
            continue
        if indent is None:
            indent = _indent(text)
        elif _indent(text) < indent:
            break
        content.append(number)
    if indent is None or not content:
        return start
    if not folded:
        number = content[min(line - 1, len(content) - 1)]
        return Position(start.file, number + 1, indent + column)
    remaining = column
    for number in content:
        length = len(lines[number]) - indent
        if remaining <= length + 1:
            return Position(start.file, number + 1, indent + remaining)
        remaining -= length + 1  # a folded line break reads as one space
    return Position(start.file, content[-1] + 1, indent + 1)


def locate_in_expression(smap: SourceMap, path: PathKey, line: int, column: int) -> Position:
    """The file position of (``line``, ``column``) inside the expression at ``path``."""
    start = smap.locate(path)
    lines = _source_lines(smap.file)
    if lines is None or not 0 < start.line <= len(lines):
        return start
    first = lines[start.line - 1]
    opener = first[start.col - 1 : start.col]
    if opener in ("|", ">"):
        return _block_position(lines, start, line, column)
    quoted = 1 if opener in ("'", '"') else 0
    if line == 1:
        return Position(start.file, start.line, start.col + quoted + column - 1)
    number = start.line - 1 + line - 1
    if number >= len(lines):
        return start
    return Position(start.file, number + 1, _indent(lines[number]) + column)


def _expression_message(error: ErrorDetails, smap: SourceMap) -> str:
    ctx = error.get("ctx") or {}
    path = tuple(error["loc"])
    where = locate_in_expression(smap, path, int(ctx.get("line", 1)), int(ctx.get("column", 1)))
    return f"{where}: {_label(path)}: {ctx.get('message', error['msg'])}"


def _rebuilt(error: ErrorDetails) -> InitErrorDetails:
    kind = error["type"]
    details: dict[str, Any] = {"loc": error["loc"], "input": error["input"]}
    if kind in _CORE_ERROR_TYPES:
        details["type"] = kind
        if "ctx" in error:
            details["ctx"] = error["ctx"]
    else:
        details["type"] = PydanticCustomError(kind, error["msg"])
    return typing.cast(InitErrorDetails, details)


def split_expression_errors(
    exc: ValidationError, smap: SourceMap
) -> tuple[list[str], ValidationError | None]:
    """Positioned messages for the expression errors, and the other errors (None if none).

    ``smap`` must map the same paths as the errors' ``loc``.
    """
    messages: list[str] = []
    others: list[InitErrorDetails] = []
    for error in exc.errors():
        if error["type"] == EXPRESSION_ERROR:
            messages.append(_expression_message(error, smap))
        else:
            others.append(_rebuilt(error))
    rest = ValidationError.from_exception_data(exc.title, others) if others else None
    return messages, rest
