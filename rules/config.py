"""The schema of one rule: the items of the config's ``rules:`` list and of rule files.

```yaml
rules:
  - name: no-debug
    match: {name: "debug*"}
    drop: true
  - name: greenhouse-f
    match: {source: "greenhouse*", name: temperature}
    where: value > -60
    set: {value: "value * 1.8 + 32", unit: "'°F'"}
    range: {min: -40, max: 185}
    publish: {topic: "site/{gateway}/{source}/{name}", continue: true}
  - name: greenhouse-minute
    match: {source: "greenhouse*", name: temperature}
    window: {kind: tumbling, size: 60s, aggregate: avg}
    publish: {topic: "site/{gateway}/{source}/{name}/1m", continue: true}
  - name: hot
    from: [greenhouse-minute]
    alarm: {above: 86, for: 5m, clear_below: 82}
  - name: alarms
    match: {name: "*_alarm"}
    publish: {topic: "site/{gateway}/alarms/{source}", retain: true, priority: high}
```

## The steps of one rule, in this fixed order

1. ``match`` — globs on source and name, tag conditions (``tidegate.rules.match``);
   ``from`` — only events output by the named earlier rules (see chaining).
2. ``where`` — an expression (``tidegate.rules.expr``); false: the rule does not
   apply, the event goes on to the next rule as if it had not matched.
3. ``set`` — computed fields (``tidegate.rules.set_fields``).
4. the operators the rule names, in their declared ``order`` (``tidegate.rules.operator``):
   ``absence`` → ``range`` → ``deadband`` → ``on_change`` → ``dedup`` →
   ``throttle`` → ``window`` (with ``aggregate``) → ``alarm``. Each operator
   class declares its key, order and schema, and ``tidegate.rules.operators.builtins``
   imports the built-in ones: a new operator module and its line there add a key.
5. the outcome: ``publish`` (topic template, QoS, retain, priority), or
   ``drop: true``, or neither (the rule's output goes on to the next rules).

Each step gets what the previous one passed. Filters (range, deadband,
on_change, dedup, throttle) pass or hold back events; a window turns readings
into aggregates, so an ``alarm`` after a window in one rule watches the
aggregates. Detectors (``absence``, ``alarm``) pass every event and add their
own; an added event skips the rule's later steps and goes straight to its
outcome — so ``absence`` sees the stream as it arrives, and filters never make
a stream look silent. Events an operator emits later (a window closing on
``tick``, a held ``throttle: {keep: last}`` event) continue from the step after
that operator.

## Chaining: what goes on to later rules

Events only flow forward, through the rules in order (the config's ``rules:``,
then the files of ``rules_dir`` sorted by name, each file in order). For each
event, starting at the first rule:

- a rule whose ``match``/``from``/``where`` does not take it: on to the next rule;
- a rule with ``publish``: its output events are published to its topic and
  stop there — unless ``publish.continue: true``, then they also go on to the
  later rules (to be published again elsewhere, or dropped);
- a rule with ``drop: true``: its output events stop (counted as dropped);
- a rule with neither: its output events (transformed, filtered, aggregated,
  plus the alarms/absence reports it made) go on to the rules after it.

An event that reaches the end of the rules without being published follows the
default route (``mqtt.topic``). So a simple list of rules with ``publish`` or
``drop`` behaves as "the first matching rule decides", and events created by a
rule (alarms, aggregates) can only enter the rules *after* the one that made
them. (An event a holding operator releases later, and every created event,
counts as not yet published.)

``from: [rule, …]`` restricts a rule to events *output* by the named rules (the
last rule that output the event, i.e. passed it on or created it). Because
events only flow forward, ``from`` may only name earlier rules; naming the rule
itself or a later rule would feed events back to where they came from — a
cycle — and is refused at load, as is an unknown name. With that, a rule set
has no cycle by construction.

## Time

Operators never read the clock. Each rule has a ``time``, which gives it its
*clock*:

- ``processing`` (default): the gateway clock, as of the latest
  ``RuleStage.tick(now)`` (every 0.25 s in the pipeline; in ``tidegate rules
  test``, the replayed events' own time, ticked whenever it moves), so absence,
  alarm durations and windows end on time even while no event arrives;
- ``event``: the largest event time the rule has seen; its operators are ticked
  with it right after each event that moves it, and the gateway clock never
  reaches them. For devices whose clocks differ from the gateway's, or that
  upload in bursts.

**Late events.** An event older than its rule's clock is late. Right after a
late event, the rule's operators are ticked at the rule's clock, so what the
event makes due by then happens at once, with the times it is due at: an alarm
duration it completes (a late reading holds until the next reading arrives), a
stream first seen through it, or returning through it, silent for longer than
``after`` by the clock, a ``keep: last`` throttle interval that has already
ended. This is what a gateway ticking continuously would do, so the outcome
does not depend on how events are batched, how often the gateway ticks, or
whether the clock moves again (a replay that ends with late events loses
nothing). An event at or after the clock needs no such tick: its own step did
everything due up to its time. Live, a ``time: processing`` rule's clock is up
to one tick interval behind the gateway clock. An event's stamp never moves a
``time: processing`` rule's clock: a device stamping ahead of the gateway
changes nothing for the other streams.

Beyond that, each operator handles late events as its module documents:

- ``absence``: a stream's "last seen" is the latest time of its events; an
  event no later than that (out of order, or delivered late after newer ones)
  passes and ends or starts no silence. Only a step back of the gateway clock,
  seen by a tick, moves "last seen" back;
- ``alarm`` and ``throttle`` take each event in the order it arrives, at its own
  time;
- ``dedup`` compares a late event with every earlier pass of its value when it
  is at most ``allowed_lateness`` behind its clock (``too_late`` counts the
  others): the rule's clock for ``time: processing``; for ``time: event``, the
  newest time of the event's own stream, so one stream's stamps never make
  another's events late;
- a ``time: event`` window drops and counts events for windows already closed
  (``late_events``). Its watermark is one for all keys (it closes the windows of
  silent streams too), so one event stamped far in the future makes every later
  correct event late, for every key, until the clock reaches that stamp.

``flush`` (shutdown, and the rules a reload retires) emits what operators hold:
partial windows, held throttled events; a raised alarm stays raised (nothing is
emitted).

## Bad events and dead letters

Expression errors at run time (``value.x`` on a number, a division by zero, a
``set`` result of the wrong kind) and values a ``range: {action: dead_letter}``
rejects never stop the gateway: the event is dead-lettered with the rule name
and the reason (``RuleStage.take_dead_letters``), and counted per rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, create_model, model_validator

import tidegate.rules.operators.builtins  # noqa: F401 - declares the built-in operators
from tidegate.config.types import Duration, Name, Section
from tidegate.priority import Priority
from tidegate.rules.expr import ExpressionError, compile_expression
from tidegate.rules.expr.location import expression_error
from tidegate.rules.match import MatchSpec
from tidegate.rules.operator import Operator, RuleTime
from tidegate.rules.operators.registry import OPERATORS
from tidegate.rules.set_fields import SetSpec
from tidegate.rules.topic import TopicTemplateError, check_template


def _check_topic(value: str | None) -> str | None:
    if value is not None:
        try:
            check_template(value)
        except TopicTemplateError as exc:
            raise ValueError(str(exc)) from None
    return value


def _check_expression(text: str) -> str:
    try:
        compile_expression(text)
    except ExpressionError as exc:
        raise expression_error(exc) from None
    return text


def _one_or_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


ExpressionText = Annotated[str, AfterValidator(_check_expression)]


class PublishSpec(Section):
    topic: Annotated[str | None, AfterValidator(_check_topic)] = Field(
        None,
        description="Topic template, e.g. `site/{gateway}/{source}/{name}`; "
        "default: the mqtt.topic template.",
    )
    qos: Literal[0, 1] | None = Field(None, description="MQTT QoS; default: mqtt.qos.")
    retain: bool = Field(False, description="Publish with the MQTT retain flag.")
    uplink: Annotated[list[Name] | None, BeforeValidator(_one_or_list)] = Field(
        None,
        description="The uplink (or list of uplinks) these events go to, by name "
        "(`uplinks:`); default: every uplink.",
    )
    expire_after: Duration | None = Field(
        None,
        gt=0,
        description="Not worth sending after this long (e.g. `1h`): an event older than "
        "this (by its `time`) when an uplink would send it is dropped and counted "
        "(`dropped_route_expired`), never delivered late; MQTT 5 uplinks also give the "
        "message the rest of it as its Message Expiry Interval, so the broker drops it too.",
    )
    priority: Priority = Field(
        "normal",
        description="Outbox priority class: high, normal or low (high is sent first when "
        "the outbox has a backlog).",
    )
    continue_: bool = Field(
        False,
        alias="continue",
        description="Also pass the published events on to the later rules.",
    )


ActionArg = ExpressionText | bool | int | float
"""Smart union: a YAML true stays a bool, 1 an int, text an expression."""


class RuleActionSpec(Section):
    """``action:``: run a declared action (``actions:``) for each event the rule outputs."""

    run: Name = Field(description="The action's name, as declared under `actions:`.")
    args: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], ActionArg] = Field(
        default_factory=dict,
        description="Its arguments: each an expression over the event (text; a string "
        "constant is quoted inside: `\"'ON'\"`), or a number or true/false.",
    )


class RuleBase(Section):
    """A rule's engine keys; ``RuleConfig`` adds one optional key per operator found."""

    name: Name = Field(description="Unique rule name (shown in status and logs).")
    match: MatchSpec = Field(default_factory=MatchSpec, description="Which events the rule takes.")
    from_: Annotated[list[Name] | None, BeforeValidator(_one_or_list)] = Field(
        None,
        alias="from",
        description="Take only events output by these earlier rules (names).",
    )
    where: ExpressionText | None = Field(
        None, description="Expression; the rule applies only to events for which it is true."
    )
    set_: SetSpec = Field(
        default_factory=dict,
        alias="set",
        description="Fields to compute: value, value.KEY, name, source, unit, time, tags.TAG "
        "→ expression (or a number, true/false, null).",
    )
    time: RuleTime = Field(
        "processing",
        description="Clock of the rule's time-driven operators: processing (the gateway's) "
        "or event (the largest event time the rule has seen).",
    )
    publish: PublishSpec | None = Field(
        None, description="Publish the rule's output to a topic (it stops there)."
    )
    drop: bool = Field(False, description="Stop the rule's output (counted as dropped).")
    action: RuleActionSpec | None = Field(
        None,
        description="Run a declared action for each event the rule outputs (after its "
        "steps; whatever its outcome), e.g. `{run: vent, args: {state: \"value == "
        "'raised'\"}}`. Works with no network at all; see `actions:`.",
    )

    def operator_configs(self) -> list[tuple[type[Operator], Any]]:
        """The operators this rule uses, in the order they run, with their configs."""
        found = []
        for operator in OPERATORS.in_order():
            # One field per operator registered when the model was made (see rule_model).
            config = getattr(self, operator.key, None)
            if config is not None:
                found.append((operator, config))
        return found

    @property
    def has_steps(self) -> bool:
        return self.where is not None or bool(self.set_) or bool(self.operator_configs())

    @model_validator(mode="after")
    def _check_outcome(self) -> RuleBase:
        if self.drop and self.publish is not None:
            raise ValueError("a rule can `publish` or `drop`, not both")
        if not self.drop and self.publish is None and not self.has_steps and not self.action:
            raise ValueError(
                "a rule needs `publish: {...}`, `drop: true`, `action: {...}` or a step "
                f"(where, set, {', '.join(OPERATORS.keys())})"
            )
        return self


def rule_model() -> type[RuleBase]:
    """The model of one rule: the engine keys plus one optional key per registered operator."""
    operators: dict[str, Any] = {
        operator.key: (operator.schema | None, Field(None, description=operator.summary()))
        for operator in OPERATORS.in_order()
    }
    model: type[RuleBase] = create_model(
        "RuleConfig",
        __base__=RuleBase,
        __module__=__name__,
        __doc__="One rule: engine keys plus one optional key per operator.",
        **operators,
    )
    return model


if TYPE_CHECKING:
    RuleConfig = RuleBase
else:
    RuleConfig = rule_model()
"""One rule, validated: the model of the operators the built-ins list declared."""
