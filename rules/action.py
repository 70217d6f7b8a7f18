"""A rule's ``action:`` at run time: its arguments evaluated for each event the rule
outputs, handed to the gateway's actions (``tidegate.actions``) through a sink.

The rule stage cannot wait for a device: it hands each call to the sink and goes on
(the gateway's runner queues them). Events recording actions taken (source
``actions``) never trigger an action themselves, so a rule cannot loop on its own
doings. Without a sink (``tidegate rules test``), calls are counted only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tidegate.event import ACTIONS_SOURCE, Event
from tidegate.rules.config import RuleActionSpec
from tidegate.rules.expr.compiler import compile_expression
from tidegate.rules.expr.expression import Expression

ActionSink = Callable[[str, dict[str, Any], str], None]
"""``(action name, arguments, cause)``: queue a call; never blocks, never raises."""


class RuleAction:
    """One rule's action, its argument expressions compiled."""

    def __init__(self, rule: str, spec: RuleActionSpec) -> None:
        self.name = spec.run
        self.cause = f"rule {rule}"
        self._args: list[tuple[str, Expression | bool | int | float]] = [
            (key, compile_expression(value) if isinstance(value, str) else value)
            for key, value in spec.args.items()
        ]

    def call(self, event: Event) -> dict[str, Any] | None:
        """The arguments for ``event``; None for an event that records an action.
        Raises ``ExpressionRuntimeError`` (the stage dead-letters the event)."""
        if event.source == ACTIONS_SOURCE:
            return None
        return {
            key: value.evaluate(event) if isinstance(value, Expression) else value
            for key, value in self._args
        }
