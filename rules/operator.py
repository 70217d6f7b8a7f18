"""The operator contract: pure, synchronous steps of a rule.

An operator never does I/O and never reads the clock itself: ``apply`` gets an
event, ``tick`` gets the current time from the rule stage (event time when
replaying recorded events, processing time when live), so tests and
``tidegate rules test`` are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tidegate.event import Event


class Operator(Protocol):
    def apply(self, event: Event) -> Sequence[Event]:
        """Consume one event; return the events to pass on (none, it, or others)."""
        ...


class TimedOperator(Operator, Protocol):
    def tick(self, now: float) -> Sequence[Event]:
        """Advance time to ``now`` (epoch seconds); emit what closes by then.

        Called after every late event too, often with the same ``now`` as the
        previous tick, and possibly with a ``now`` older than event times already
        applied: that must be cheap and must not be taken for a clock step.
        """
        ...

    def flush(self) -> Sequence[Event]:
        """Shutdown: emit what is still open, by the operator's documented rule."""
        ...


class EventTimeAware(Protocol):
    """An operator whose clock differs in a ``time: event`` rule offers this.

    The compiler calls ``use_event_time()`` once, before the first event, for the
    operators of ``time: event`` rules (``dedup``: a clock per key instead of the
    ticks). Without it, an operator is told the rule's time only through ``tick``
    (the gateway clock, or the rule's watermark).
    """

    def use_event_time(self) -> None: ...
