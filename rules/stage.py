"""The rule stage: runs the rule set over driver events and routes what comes out.

Pure and synchronous like the operators it runs. The pipeline calls:

- ``process(events) -> list[Outgoing]`` for each batch from the drivers;
- ``tick(now) -> list[Outgoing]`` every 0.25 s with the wall clock, so
  time-driven operators (windows, alarm durations, absence, ``throttle`` with
  ``keep: last``) of ``time: processing`` rules emit even while nothing
  arrives (``time: event`` rules are ticked by their own events instead).
  ``now`` is also those rules' clock: a later event older than it is late, and
  its rule is ticked at that clock right after it, inside ``process`` (see
  "Late events" in ``tidegate.rules.config``);
- ``flush() -> list[Outgoing]`` once at shutdown: every operator, rule by rule
  in order, emits what it holds (partial windows, held events), and that output
  runs through the later rules like any other;
- ``take_dead_letters() -> list[RuleDeadLetter]`` after each of those: events a
  rule rejected (expression runtime errors, ``range`` with ``action:
  dead_letter``), each with the rule name and the reason, for the outbox's
  dead-letter table. At most ``MAX_PENDING_DEAD_LETTERS`` wait; beyond that the
  oldest are discarded and counted (``dead_letters_discarded``);
- ``reload(rules) -> ReloadResult`` to swap in a new, already validated rule
  set between two calls (see below);
- ``stats`` / ``counters()`` for status: per rule in, out, filtered, dropped,
  created, dead-lettered, errors, and each operator's own counters.

How an event travels through the rules (order, chaining, ``from``, time) is
documented in ``tidegate.rules.config``; in short: forward only, a rule with
``publish`` or ``drop`` stops what it outputs (``publish.continue`` lets it go
on), a rule with neither passes its output on, and what no rule published
takes the default route.

Speed: which rules' ``match`` globs accept a (source, name) is decided once and
remembered (a site has few streams), so per event only the candidate rules'
tag conditions, ``from`` and ``where`` are tested.

Reload: ``reload`` first compiles the new set completely — nothing changes if
that fails. A rule whose name and config are unchanged keeps its compiled
object: window contents, alarm and absence states, throttles, counters. The
rules that are removed or changed are flushed first (their partial windows go
out) through the old set, then the new set is swapped in; the pipeline calls
``reload`` between two ``process`` calls, so the swap falls between two events.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tidegate.event import Event
from tidegate.outgoing import Outgoing
from tidegate.rules.chain import RuleSetError, check_rule_set
from tidegate.rules.compiler import (
    DEFAULT_ROUTE,
    CompiledRule,
    Route,
    RouteDefaults,
    RuleDeadLetter,
    RuleStats,
    compile_rules,
    default_route,
)
from tidegate.rules.expr.errors import ExpressionRuntimeError

if TYPE_CHECKING:  # the schema's module imports every operator: not needed to run rules
    from tidegate.rules.action import ActionSink
    from tidegate.rules.config import RuleConfig

__all__ = [
    "DEFAULT_ROUTE",
    "MAX_PENDING_DEAD_LETTERS",
    "ReloadResult",
    "RouteDefaults",
    "RuleDeadLetter",
    "RuleSetError",
    "RuleStage",
    "RuleStats",
]

MAX_PENDING_DEAD_LETTERS = 10_000
MAX_REMEMBERED_STREAMS = 65_536
"""(source, name) pairs whose candidate rules are remembered; beyond, they are recomputed."""

# An event on its way: (event, index of the first rule it may reach, name of the rule that
# output it or None, whether a rule already published it).
_Pending = tuple[Event, int, str | None, bool]
_Candidates = tuple[tuple[int, ...], tuple[CompiledRule, ...]]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did; ``outgoing`` (what retired rules flushed) goes to the outbox."""

    kept: tuple[str, ...]
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    outgoing: list[Outgoing] = field(default_factory=list)


class _Plan:
    """One compiled rule set in order, and the candidate rules per (source, name)."""

    __slots__ = ("_candidates", "by_name", "clocked", "rules")

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        self.by_name = {rule.name: rule for rule in self.rules}
        self.clocked = tuple(
            (index, rule)
            for index, rule in enumerate(self.rules)
            if rule.timed_steps and not rule.event_clock
        )
        self._candidates: dict[tuple[str, str], _Candidates] = {}

    def candidates(self, source: str, name: str) -> _Candidates:
        key = (source, name)
        found = self._candidates.get(key)
        if found is None:
            pairs = [
                (index, rule)
                for index, rule in enumerate(self.rules)
                if rule.stream_test is None or rule.stream_test(source, name)
            ]
            found = (tuple(i for i, _ in pairs), tuple(r for _, r in pairs))
            if len(self._candidates) < MAX_REMEMBERED_STREAMS:
                self._candidates[key] = found
        return found


class RuleStage:
    """Runs a rule set; see the module docstring for the calls the pipeline makes."""

    def __init__(
        self, rules: Sequence[RuleConfig], defaults: RouteDefaults, *, trace: bool = False
    ) -> None:
        """Compile ``rules`` (validated configs); raise RuleSetError if they cannot run together.

        With ``trace``, the route of every output is remembered for ``take_trace``
        (``tidegate rules test`` prints which rule published what).
        """
        problems = check_rule_set(rules)
        if problems:
            raise RuleSetError(problems)
        self._defaults = defaults
        self._default = default_route(defaults)
        self._default_stats = RuleStats()
        self._plan = _Plan(compile_rules(rules, defaults).rules)
        self._dead_letters: deque[RuleDeadLetter] = deque()
        self.dead_letters_discarded = 0
        self._trace: list[Route] | None = [] if trace else None
        self.action_sink: ActionSink | None = None
        """Where rules' ``action:`` calls go (the gateway's action runner); None: counted only."""

    # -- the pipeline's calls -----------------------------------------------------------

    def process(self, events: Sequence[Event]) -> list[Outgoing]:
        out: list[Outgoing] = []
        # One stack for the batch: the first event on top, and what an event's rules
        # pass on goes above the events after it, so outputs keep the input order.
        self._drain([(event, 0, None, False) for event in reversed(events)], out)
        self._gather_dead_letters()
        return out

    def tick(self, now: float) -> list[Outgoing]:
        """Advance ``time: processing`` rules to ``now`` (epoch seconds)."""
        out: list[Outgoing] = []
        for index, rule in self._plan.clocked:
            emitted = rule.tick(now)
            if emitted:
                self._emitted(index, rule, emitted, out)
        self._gather_dead_letters()
        return out

    def flush(self) -> list[Outgoing]:
        """Shutdown: every rule, in order, emits what its operators hold."""
        out: list[Outgoing] = []
        for index, rule in enumerate(self._plan.rules):
            emitted = rule.flush()
            if emitted:
                self._emitted(index, rule, emitted, out)
        self._gather_dead_letters()
        return out

    def take_dead_letters(self) -> list[RuleDeadLetter]:
        """The events rules rejected since the last call, oldest first."""
        taken = list(self._dead_letters)
        self._dead_letters.clear()
        return taken

    def reload(self, rules: Sequence[RuleConfig]) -> ReloadResult:
        """Swap in a new rule set, keeping unchanged rules' state; raise RuleSetError if unfit."""
        problems = check_rule_set(rules)
        if problems:
            raise RuleSetError(problems)
        old = self._plan
        compiled = compile_rules(rules, self._defaults, reuse=old.by_name)
        new_names = {rule.name for rule in compiled.rules}
        kept = {id(rule) for rule in compiled.rules}
        out: list[Outgoing] = []
        for index, rule in enumerate(old.rules):
            if id(rule) not in kept:
                emitted = rule.flush()  # through the old set: the swap comes after
                if emitted:
                    self._emitted(index, rule, emitted, out)
        self._gather_dead_letters()
        self._plan = _Plan(compiled.rules)
        return ReloadResult(
            kept=tuple(compiled.kept),
            added=tuple(compiled.added),
            changed=tuple(compiled.changed),
            removed=tuple(rule.name for rule in old.rules if rule.name not in new_names),
            outgoing=out,
        )

    # -- status ----------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, RuleStats]:
        """Per rule, in order, then ``(default)`` (the default route's: ``published``)."""
        found = {rule.name: rule.stats for rule in self._plan.rules}
        found[DEFAULT_ROUTE] = self._default_stats
        return found

    def counters(self) -> dict[str, object]:
        """Everything countable, as plain data for status output."""
        rules: dict[str, object] = {}
        for rule in self._plan.rules:
            s = rule.stats
            rules[rule.name] = {
                "in": s.matched,
                "out": s.out,
                "published": s.published,
                "passed": s.passed,
                "filtered": s.filtered,
                "dropped": s.dropped,
                "created": s.created,
                "dead_lettered": s.dead_lettered,
                "errors": s.errors,
                "actions": s.actions,
                "operators": rule.operator_counters(),
            }
        return {
            "rules": rules,
            "default_route": {"published": self._default_stats.published},
            "dead_letters_discarded": self.dead_letters_discarded,
        }

    def take_trace(self) -> list[Route]:
        """With ``trace``: the route of each output since the last call, in output order."""
        if self._trace is None:
            return []
        taken, self._trace = self._trace, []
        return taken

    # -- routing ---------------------------------------------------------------------

    def _drain(self, pending: list[_Pending], out: list[Outgoing]) -> None:
        """Route events until none is left: each to the first later rule that takes it."""
        plan = self._plan
        while pending:
            event, position, origin, published = pending.pop()
            indices, rules = plan.candidates(event.source, event.name)
            k = bisect_left(indices, position) if position else 0
            n = len(rules)
            while k < n:
                rule = rules[k]
                k += 1
                from_names = rule.from_names
                if from_names is not None and origin not in from_names:
                    continue
                tag_test = rule.tag_test
                if tag_test is not None and not tag_test(event):
                    continue
                where = rule.where
                if where is not None:
                    try:
                        if not where.test(event):
                            continue
                    except ExpressionRuntimeError as exc:
                        rule.reject(event, f"where: {exc}")
                        break
                stats = rule.stats
                stats.matched += 1
                outputs: Sequence[Event] = rule.run(event) if rule.steps else (event,)
                if not outputs:
                    break
                if rule.action is not None:
                    self._act(rule, outputs)
                route = rule.route
                if route is not None:
                    self._publish(route, stats, outputs, out)
                    if not rule.continues:
                        break
                    published = True
                elif rule.drops:
                    stats.dropped += len(outputs)
                    break
                else:
                    stats.passed += len(outputs)
                origin = rule.name
                if len(outputs) == 1 and outputs[0] is event:
                    continue  # the same event goes on: the later candidates are the same
                after = indices[k - 1] + 1
                for e in reversed(outputs):  # a stack: the first output is routed first
                    # Published already: what this rule published, or the reading itself
                    # (same id) after an earlier rule published it with `continue`.
                    carried = rule.continues or (published and e.id == event.id)
                    pending.append((e, after, origin, carried))
                break
            else:
                if not published:
                    self._default_stats.published += 1
                    out.append(self._default.outgoing(event))
                    if self._trace is not None:
                        self._trace.append(self._default)

    def _publish(
        self, route: Route, stats: RuleStats, events: Sequence[Event], out: list[Outgoing]
    ) -> None:
        outgoing = route.outgoing
        for e in events:
            out.append(outgoing(e))
        stats.published += len(events)
        if self._trace is not None:
            self._trace.extend([route] * len(events))

    def _emitted(
        self, index: int, rule: CompiledRule, emitted: Sequence[Event], out: list[Outgoing]
    ) -> None:
        """Events a rule emitted on tick or flush: its outcome, then on through later rules.

        The same outcome as ``_drain`` gives the output of ``run``.
        """
        stats = rule.stats
        if rule.action is not None:
            self._act(rule, emitted)
        route = rule.route
        if route is not None:
            self._publish(route, stats, emitted, out)
            if not rule.continues:
                return
        elif rule.drops:
            stats.dropped += len(emitted)
            return
        else:
            stats.passed += len(emitted)
        published = route is not None
        self._drain([(e, index + 1, rule.name, published) for e in reversed(emitted)], out)

    def _act(self, rule: CompiledRule, events: Sequence[Event]) -> None:
        """Hand the rule's action a call per event (an argument that fails to evaluate
        dead-letters its event's call, not the event)."""
        action = rule.action
        assert action is not None
        sink = self.action_sink
        for e in events:
            try:
                args = action.call(e)
            except ExpressionRuntimeError as exc:
                rule.reject(e, f"action {action.name}: {exc}")
                continue
            if args is None:
                continue
            rule.stats.actions += 1
            if sink is not None:
                sink(action.name, args, action.cause)

    def _gather_dead_letters(self) -> None:
        sink = self._dead_letters
        for rule in self._plan.rules:
            if rule.dead_letters:
                sink.extend(rule.take_dead_letters())
        excess = len(sink) - MAX_PENDING_DEAD_LETTERS
        if excess > 0:
            self.dead_letters_discarded += excess
            for _ in range(excess):
                sink.popleft()
