"""A compiled expression: what a rule holds and evaluates against each event."""

from __future__ import annotations

from tidegate.event import Event
from tidegate.rules.expr.closures import Evaluator
from tidegate.rules.expr.errors import ExpressionRuntimeError


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
