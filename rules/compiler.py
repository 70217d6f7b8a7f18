"""Compiling one rule: its config becomes the objects that run it, with its state and counters.

A ``CompiledRule`` knows nothing of its position in the rule set (``from``
holds names), so a reload can keep it — window contents, alarm states,
counters and all — when its config has not changed. The rule stage decides
which rule an event reaches and what happens to the rule's output; this
module runs the steps inside one rule, in the order ``tidegate.rules.config``
documents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tidegate.event import Event
from tidegate.outgoing import Outgoing
from tidegate.priority import Priority, priority_class
from tidegate.rules.expr.errors import ExpressionRuntimeError
from tidegate.rules.match import EventTest, StreamTest, compile_stream_test, compile_tag_test
from tidegate.rules.operator import Operator, RejectingOperator, TimedOperator
from tidegate.rules.set_fields import SetFields
from tidegate.rules.topic import TopicRenderer, compile_template

if TYPE_CHECKING:  # the schema's module imports every operator: not needed to run rules
    from tidegate.rules.action import RuleAction
    from tidegate.rules.config import RuleConfig
    from tidegate.rules.expr.expression import Expression

log = logging.getLogger(__name__)

DEFAULT_ROUTE = "(default)"
"""The name the default route's counters go under."""


@dataclass(frozen=True, slots=True)
class RouteDefaults:
    """What the default route and rules without their own topic or QoS use."""

    gateway: str
    prefix: str
    topic: str
    qos: int
    uplinks: tuple[str, ...] = ()
    """Every uplink's name (a route to all of them needs no restriction)."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a rule publishes: the one place an ``Outgoing`` is made."""

    rule: str
    topic: TopicRenderer
    qos: int
    retain: bool
    priority: Priority
    uplinks: tuple[str, ...] = ()
    """The uplinks its events go to; empty: every one."""
    expire_after: float | None = None

    def outgoing(self, event: Event) -> Outgoing:
        return Outgoing(
            event,
            self.topic(event),
            self.qos,
            self.retain,
            priority_class(self.priority),
            self.uplinks,
            self.expire_after,
        )


def _restriction(named: list[str] | None, every: tuple[str, ...]) -> tuple[str, ...]:
    """The uplinks a route is restricted to: none where it names them all."""
    if not named or set(every) <= set(named):
        return ()
    return tuple(sorted(set(named)))


def default_route(defaults: RouteDefaults) -> Route:
    render = compile_template(defaults.topic, gateway=defaults.gateway, prefix=defaults.prefix)
    return Route(DEFAULT_ROUTE, render, defaults.qos, False, "normal")


@dataclass(slots=True)
class RuleStats:
    """Per-rule counters (``tidegate status``, ``tidegate rules test``)."""

    matched: int = 0
    """In: events the rule took (match, from and where passed)."""
    published: int = 0
    """Events the rule published."""
    passed: int = 0
    """Events the rule passed on to later rules (it has no outcome, or `continue`)."""
    dropped: int = 0
    """Events stopped by `drop: true`."""
    filtered: int = 0
    """Events taken that did not come out of the steps: filtered, held or put in a window."""
    created: int = 0
    """Events the rule's operators made: alarms, absence reports, aggregates."""
    dead_lettered: int = 0
    """Events dead-lettered: expression errors, and `range` with `action: dead_letter`."""
    errors: int = 0
    """Expression runtime errors (and defects caught in an operator): each a dead letter."""
    actions: int = 0
    """Calls of the rule's ``action:`` handed to the gateway's actions."""

    @property
    def out(self) -> int:
        return self.published + self.passed


@dataclass(frozen=True, slots=True)
class RuleDeadLetter:
    """An event a rule could not handle, for the outbox's dead-letter table."""

    event: Event
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a rule: ``set`` or an operator."""

    key: str
    apply: Callable[[Event], Sequence[Event]]
    detector: bool
    """Events other than the one given go straight to the rule's outcome (``Operator.detector``)."""


class CompiledRule:
    """One rule ready to run: its tests, steps, route and counters."""

    def __init__(self, config: RuleConfig, defaults: RouteDefaults) -> None:
        self.config = config
        self.name = config.name
        self.stream_test: StreamTest | None = compile_stream_test(config.match)
        self.tag_test: EventTest | None = compile_tag_test(config.match)
        self.from_names: frozenset[str] | None = (
            frozenset(config.from_) if config.from_ is not None else None
        )
        # The expression language loads with the first rule that uses it, not with the engine.
        from tidegate.rules.expr.compiler import compile_expression  # noqa: PLC0415

        self.where: Expression | None = (
            compile_expression(config.where) if config.where is not None else None
        )
        steps: list[Step] = []
        if config.set_:
            steps.append(Step("set", SetFields(config.set_).apply, False))
        operators: list[tuple[str, Operator]] = []
        timed: list[tuple[int, Step, TimedOperator]] = []
        for operator, section in config.operator_configs():
            op = operator.build(section, config.time)
            step = Step(operator.key, op.apply, operator.detector)
            if isinstance(op, TimedOperator):
                timed.append((len(steps), step, op))
            steps.append(step)
            operators.append((operator.key, op))
        self.steps = tuple(steps)
        self.operators = tuple(operators)
        self.timed_steps = tuple(timed)
        """The steps whose operators are time-driven: ticked, and flushed at the end."""
        self.rejecting = tuple(op for _, op in operators if isinstance(op, RejectingOperator))
        self.event_clock = config.time == "event"
        self.watermark = float("-inf")
        """time: event: the largest event time the rule has seen."""
        self.clock = float("-inf")
        """time: processing: the ``now`` of the latest ``tick`` (the gateway clock)."""
        self.route: Route | None = None
        publish = config.publish
        if publish is not None:
            topic = publish.topic or defaults.topic
            self.route = Route(
                config.name,
                compile_template(topic, gateway=defaults.gateway, prefix=defaults.prefix),
                defaults.qos if publish.qos is None else publish.qos,
                publish.retain,
                publish.priority,
                _restriction(publish.uplink, defaults.uplinks),
                publish.expire_after,
            )
        self.drops = config.drop
        self.action: RuleAction | None = None
        if config.action is not None:
            from tidegate.rules.action import RuleAction  # noqa: PLC0415 - as the expressions

            self.action = RuleAction(config.name, config.action)
        self.continues = publish is not None and publish.continue_
        self.stats = RuleStats()
        self.dead_letters: list[RuleDeadLetter] = []

    def __repr__(self) -> str:
        return f"CompiledRule({self.name!r})"

    # -- running the steps ----------------------------------------------------------

    def run(self, event: Event) -> list[Event]:
        """The rule's output for one event it took (steps only; the stage applies the outcome)."""
        out: list[Event] = []
        try:
            self._descend(event, 0, out)
            if self.timed_steps:
                self._tick_after(event.time, out)
        except ExpressionRuntimeError as exc:
            self.reject(event, str(exc))
            return []
        except Exception as exc:  # a defect in an operator must cost one event, not the gateway
            log.exception("rule %s: internal error on an event; dead-lettered", self.name)
            self.reject(event, f"internal error: {type(exc).__name__}: {exc}")
            return []
        if self.rejecting and self._collect_rejected():
            return out  # the event was dead-lettered: not counted as filtered
        event_id = event.id
        for e in out:
            if e.id == event_id:
                break
        else:
            self.stats.filtered += 1
        return out

    def reject(self, event: Event, reason: str) -> None:
        """Count an expression error (or a defect) and dead-letter the event."""
        self.stats.errors += 1
        self.stats.dead_lettered += 1
        self.dead_letters.append(RuleDeadLetter(event, self.name, reason))

    def _descend(self, event: Event, k: int, out: list[Event]) -> None:
        """Run ``event`` through steps ``k``… and append what comes out to ``out``."""
        steps = self.steps
        n = len(steps)
        while k < n:
            step = steps[k]
            k += 1
            produced = step.apply(event)
            if len(produced) == 1:
                only = produced[0]
                if only is event:
                    continue
                if not step.detector:
                    event = only
                    continue
            if step.detector:
                for e in produced:
                    if e is event:
                        self._descend(e, k, out)
                    else:
                        self.stats.created += 1
                        out.append(e)
            else:
                for e in produced:
                    self._descend(e, k, out)
            return
        out.append(event)

    def _emitted(self, step: Step, k: int, produced: Sequence[Event], out: list[Event]) -> None:
        """Events step ``k`` emitted on its own (tick, flush): on through the later steps."""
        for e in produced:
            if step.detector:
                self.stats.created += 1
                out.append(e)
            else:
                self._descend(e, k + 1, out)

    def _tick(self, now: float, out: list[Event]) -> None:
        for k, step, op in self.timed_steps:
            produced = op.tick(now)
            if produced:
                self._emitted(step, k, produced, out)

    def _tick_after(self, t: float, out: list[Event]) -> None:
        """After an event at ``t``: tick the operators at the rule's clock.

        A late event (older than the clock) may have changed what is due by the clock
        (an alarm duration it completes, a stream it shows silent, an interval it
        opens): waiting for the clock to move would act on it late, or never in a
        replay that ends there. An event at or after the clock needs no tick: its own
        ``apply`` did all there is to do up to its time, and the other keys were
        ticked at the clock already (for ``time: event``, the tick at a watermark the
        event moves is the one that moves the operators).
        """
        if self.event_clock:
            if t > self.watermark:
                self.watermark = t
            elif not t < self.watermark:  # at the watermark (or not a number)
                return
            self._tick(self.watermark, out)
        elif t < self.clock:
            self._tick(self.clock, out)

    def tick(self, now: float) -> list[Event]:
        """Advance the rule's operators to ``now``; what they emit, through the later steps."""
        self.clock = now  # follows the gateway clock, back too: operators judge steps
        out: list[Event] = []
        try:
            self._tick(now, out)
        except Exception:  # see run; a tick has no event to dead-letter
            self.stats.errors += 1
            log.exception("rule %s: internal error on tick", self.name)
        if self.rejecting:
            self._collect_rejected()
        return out

    def flush(self) -> list[Event]:
        """Shutdown or retirement: each operator, in order, emits what it holds."""
        out: list[Event] = []
        for k, step, op in self.timed_steps:  # only time-driven operators hold events
            try:
                self._emitted(step, k, op.flush(), out)
            except Exception:
                self.stats.errors += 1
                log.exception("rule %s: internal error on flush", self.name)
        if self.rejecting:
            self._collect_rejected()
        return out

    def _collect_rejected(self) -> int:
        """Move what the operators rejected to the rule's dead letters; how many there were."""
        count = 0
        for op in self.rejecting:
            for event, reason in op.take_dead_letters():
                count += 1
                self.dead_letters.append(RuleDeadLetter(event, self.name, reason))
        self.stats.dead_lettered += count
        return count

    def take_dead_letters(self) -> list[RuleDeadLetter]:
        taken, self.dead_letters = self.dead_letters, []
        return taken

    def operator_counters(self) -> dict[str, dict[str, int]]:
        return {key: op.counters() for key, op in self.operators}


@dataclass(slots=True)
class CompiledSet:
    """A compiled rule set, and which of its rules were kept from the previous one."""

    rules: list[CompiledRule] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def compile_rules(
    configs: Sequence[RuleConfig],
    defaults: RouteDefaults,
    reuse: dict[str, CompiledRule] | None = None,
) -> CompiledSet:
    """Compile a rule set, keeping the compiled rules of ``reuse`` whose config is equal."""
    plan = CompiledSet()
    reuse = reuse or {}
    for config in configs:
        old = reuse.get(config.name)
        if old is not None and old.config == config:
            plan.rules.append(old)
            plan.kept.append(config.name)
            continue
        plan.rules.append(CompiledRule(config, defaults))
        (plan.changed if old is not None else plan.added).append(config.name)
    return plan
