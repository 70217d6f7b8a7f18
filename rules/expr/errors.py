"""How an expression fails: refused at load (with its place in the text), or for one event."""

from __future__ import annotations

from typing import NamedTuple, NoReturn

from tidegate.errors import TidegateError


class Pos(NamedTuple):
    """A place in the expression text: 1-based line and column, counted in characters."""

    line: int
    column: int


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


class ExpressionRuntimeError(TidegateError):
    """An expression could not be evaluated for one event.

    The rule stage counts these and drops or dead-letters the event; they are
    the only exception ``Expression.evaluate`` raises.
    """


def refused(message: str, pos: Pos) -> ExpressionError:
    """The load error ``message`` at ``pos``."""
    return ExpressionError(message, pos.line, pos.column)


def fail(message: str, pos: Pos) -> NoReturn:
    """Refuse the text being read, at ``pos``."""
    raise refused(message, pos)
