"""The rule stage: turns driver events into routed events for the outbox.

Pure and synchronous like the operators it runs: ``process`` takes a batch
of events and returns what should be accepted, with topic, QoS and retain
decided. ``tick`` and ``flush`` exist for time-driven rules (windows,
alarms, absence) so the pipeline's interface does not change when they come.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tidegate.event import Event
from tidegate.outgoing import Outgoing
from tidegate.rules.config import RuleConfig
from tidegate.rules.match import compile_match
from tidegate.rules.topic import TopicRenderer, compile_template


@dataclass(slots=True)
class RuleStats:
    matched: int = 0
    published: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class RouteDefaults:
    gateway: str
    prefix: str
    topic: str
    qos: int


@dataclass(slots=True)
class _CompiledRule:
    name: str
    test: Callable[[Event], bool]
    topic: TopicRenderer | None  # None: the rule drops
    qos: int
    retain: bool
    stats: RuleStats


_DEFAULT = "(default)"


class RuleStage:
    def __init__(self, rules: Sequence[RuleConfig], defaults: RouteDefaults) -> None:
        render_default = compile_template(
            defaults.topic, gateway=defaults.gateway, prefix=defaults.prefix
        )
        self._rules: list[_CompiledRule] = []
        for rule in rules:
            publish = rule.publish
            topic: TopicRenderer | None = None
            if publish is not None:
                topic = (
                    compile_template(
                        publish.topic, gateway=defaults.gateway, prefix=defaults.prefix
                    )
                    if publish.topic
                    else render_default
                )
            self._rules.append(
                _CompiledRule(
                    name=rule.name,
                    test=compile_match(rule.match),
                    topic=topic,
                    qos=publish.qos if publish and publish.qos is not None else defaults.qos,
                    retain=publish.retain if publish else False,
                    stats=RuleStats(),
                )
            )
        self._default = _CompiledRule(
            _DEFAULT, lambda e: True, render_default, defaults.qos, False, RuleStats()
        )
        # Without tag conditions the decision depends on (source, name) only.
        self._cacheable = all(not r.match.uses_tags for r in rules)
        self._decisions: dict[tuple[str, str], _CompiledRule] = {}

    @property
    def stats(self) -> dict[str, RuleStats]:
        """Per rule (and ``(default)``): events matched, published, dropped."""
        return {r.name: r.stats for r in [*self._rules, self._default]}

    def _decide(self, event: Event) -> _CompiledRule:
        if self._cacheable:
            key = (event.source, event.name)
            rule = self._decisions.get(key)
            if rule is not None:
                return rule
        rule = next((r for r in self._rules if r.test(event)), self._default)
        if self._cacheable and len(self._decisions) < 65536:
            self._decisions[(event.source, event.name)] = rule
        return rule

    def process(self, events: Sequence[Event]) -> list[Outgoing]:
        out: list[Outgoing] = []
        append = out.append
        for event in events:
            rule = self._decide(event)
            stats = rule.stats
            stats.matched += 1
            if rule.topic is None:
                stats.dropped += 1
                continue
            stats.published += 1
            append(Outgoing(event, rule.topic(event), rule.qos, rule.retain))
        return out

    def tick(self, now: float) -> list[Outgoing]:
        """Advance rule timers to ``now``; no rule kind here is time-driven yet."""
        del now
        return []

    def flush(self) -> list[Outgoing]:
        """Shutdown: emit what time-driven rules still hold; none here yet."""
        return []
