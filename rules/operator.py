"""The operator contract: pure, synchronous steps of a rule, declared on their classes.

An operator never does I/O and never reads the clock itself: ``apply`` gets an
event, ``tick`` gets the current time from the rule stage (event time when
replaying recorded events, processing time when live), so tests and
``tidegate rules test`` are deterministic.

An operator class declares everything the engine needs with class keywords,
and that declaration registers it (``tidegate.rules.operators.registry``)::

    class Deadband(Operator, key="deadband", order=30, schema=DeadbandSection):
        "Deadband: pass a reading only when it moved far enough from the last one passed."

- ``key``: the rule key that turns it on; its value is validated by ``schema``
  (a ``Section``, or an annotated union of them) and described in the config
  reference by the first line of the class docstring;
- ``order``: where it runs among a rule's steps, smaller first;
- ``detector=True``: it passes the events it gets unchanged and adds events of
  its own (alarms, absence reports), which go straight to the rule's outcome
  instead of through its later steps.

What the engine does with an operator follows from the base classes it has,
not from the methods it happens to define: only a ``TimedOperator`` is ticked
and flushed, only a ``RejectingOperator`` hands the stage dead letters. An
operator that holds events back must be a ``TimedOperator`` (something has to
let them go). A class declared without ``key`` is a base for others (``Throttle``'s
two kinds) and registers nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from tidegate.event import Event
from tidegate.rules.operators.registry import OPERATORS, OperatorDeclarationError

RuleTime = Literal["processing", "event"]
"""A rule's clock: the gateway's, or the largest event time the rule has seen."""

DeadLetter = tuple[Event, str]
"""A rejected event and the reason, for the outbox's dead-letter table."""

NO_EVENTS: Sequence[Event] = ()


class Operator(ABC):
    """One step of a rule; see the module docstring for the declaration keywords."""

    key: ClassVar[str]
    order: ClassVar[int]
    detector: ClassVar[bool]
    schema: ClassVar[Any]
    """A ``Section`` subclass, or an ``Annotated`` union of them (``window``'s kinds)."""

    def __init_subclass__(
        cls,
        *,
        key: str | None = None,
        order: int | None = None,
        schema: Any = None,
        detector: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if key is None:
            if order is not None or schema is not None or detector:
                raise OperatorDeclarationError(
                    f"{cls.__qualname__}: `order`, `schema` and `detector` declare an "
                    "operator, which needs its `key` too"
                )
            return
        if order is None or schema is None:
            raise OperatorDeclarationError(
                f"{cls.__qualname__}: operator {key!r} needs `order` and `schema`"
            )
        cls.key, cls.order, cls.schema, cls.detector = key, order, schema, detector
        OPERATORS.register(cls)

    @abstractmethod
    def __init__(self, config: Any) -> None:
        """Made from the validated value of the rule's key (an instance of ``schema``)."""

    @classmethod
    def build(cls, config: Any, time: RuleTime = "processing") -> Operator:
        """The operator of one rule; override to pick a class by the config or the rule's time."""
        return cls(config)

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring: the rule key's description."""
        return (cls.__doc__ or "").strip().splitlines()[0]

    @abstractmethod
    def apply(self, event: Event) -> Sequence[Event]:
        """Consume one event; return the events to pass on (none, it, or others)."""

    @abstractmethod
    def counters(self) -> dict[str, int]:
        """The operator's counters and gauges, for ``tidegate status``."""


class TimedOperator(Operator):
    """An operator with time-driven behaviour: the rule ticks it, and flushes it at the end."""

    @abstractmethod
    def tick(self, now: float) -> Sequence[Event]:
        """Advance time to ``now`` (epoch seconds); emit what closes by then.

        Called after every late event too, often with the same ``now`` as the
        previous tick, and possibly with a ``now`` older than event times already
        applied: that must be cheap and must not be taken for a clock step.
        """

    def flush(self) -> Sequence[Event]:
        """Shutdown: emit what is still open, by the operator's documented rule.

        This default is for operators that hold no events (alarm, absence).
        """
        return NO_EVENTS


class RejectingOperator(Operator):
    """An operator that rejects events with a reason, for the outbox's dead-letter table.

    ``apply`` returns nothing for a rejected event and calls ``reject``; the rule
    takes the rejected events after each step of its own.
    """

    def __init__(self, config: Any) -> None:
        self._rejected: list[DeadLetter] = []

    def reject(self, event: Event, reason: str) -> None:
        self._rejected.append((event, reason))

    def take_dead_letters(self) -> list[DeadLetter]:
        """Hand over the events rejected since the last call."""
        taken, self._rejected = self._rejected, []
        return taken
