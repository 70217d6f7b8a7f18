"""Operators declare themselves: key, order, detector flag and schema on their own class."""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any, get_args

import pytest
from pydantic import Field, ValidationError

from tests.rules.rule_support import DEFAULTS, T0, configs, docstring_rules, reading
from tidegate.config.types import Section
from tidegate.event import Event
from tidegate.ids import uuid7
from tidegate.rules.config import RuleBase, RuleConfig, rule_model
from tidegate.rules.operator import Operator, RejectingOperator, TimedOperator
from tidegate.rules.operators.deadband import Deadband
from tidegate.rules.operators.registry import (
    OPERATORS,
    RESERVED_KEYS,
    OperatorDeclarationError,
)
from tidegate.rules.operators.window.config import TumblingSection, WindowKindSection
from tidegate.rules.operators.window.operator import WindowOperator
from tidegate.rules.stage import RuleStage

BUILT_IN_ORDER = (
    "absence",
    "range",
    "deadband",
    "on_change",
    "dedup",
    "throttle",
    "window",
    "alarm",
)


# -- the built-ins ---------------------------------------------------------------------


def test_the_built_ins_are_rule_keys_in_the_documented_order() -> None:
    assert OPERATORS.keys() == BUILT_IN_ORDER
    assert {o.key for o in OPERATORS.in_order() if o.detector} == {"absence", "alarm"}
    for operator in OPERATORS.in_order():
        field = RuleConfig.model_fields[operator.key]
        assert field.description == operator.summary()


def test_the_reserved_keys_are_the_engine_keys_of_a_rule() -> None:
    engine_keys = {field.alias or name for name, field in RuleBase.model_fields.items()}
    assert engine_keys == RESERVED_KEYS


def test_every_operator_docstring_example_runs_as_a_rule_set() -> None:
    modules = [sys.modules[operator.__module__] for operator in OPERATORS.in_order()]
    modules += [sys.modules["tidegate.rules.config"], sys.modules["tidegate.rules.set_fields"]]
    for module in modules:
        examples = docstring_rules(module)
        assert examples, f"{module.__name__} has no `rules:` example"
        stage = RuleStage(configs(*examples), DEFAULTS)
        stage.process([reading(20.0), reading(21.0, 1)])
        stage.tick(T0 + 3600)
        stage.flush()


@pytest.mark.parametrize(
    ("key", "section", "rule_time", "timed", "rejecting"),
    [
        ("deadband", {"abs": 1}, "processing", False, False),
        ("on_change", {}, "processing", False, False),
        ("range", {"min": 0}, "processing", False, True),
        ("throttle", {"interval": 1}, "processing", False, False),
        ("throttle", {"interval": 1, "keep": "last"}, "processing", True, False),
        ("dedup", {"within": 1}, "processing", True, False),
        ("dedup", {"within": 1}, "event", False, False),
        ("absence", {"after": 1}, "processing", True, False),
        ("alarm", {"above": 1}, "processing", True, False),
        ("window", {"kind": "count", "count": 2}, "processing", True, False),
    ],
)
def test_only_time_driven_operators_are_timed(
    key: str, section: dict[str, Any], rule_time: str, timed: bool, rejecting: bool
) -> None:
    rule = RuleConfig.model_validate({"name": "r", "time": rule_time, key: section})
    ((operator, config),) = rule.operator_configs()
    op = operator.build(config, rule.time)
    assert (isinstance(op, TimedOperator), isinstance(op, RejectingOperator)) == (timed, rejecting)
    stage = RuleStage([rule], DEFAULTS)
    assert bool(stage._plan.rules[0].timed_steps) == timed
    assert [index for index, _ in stage._plan.clocked] == ([0] if timed else [])


def test_every_window_kind_has_its_operator() -> None:
    for section in get_args(WindowKindSection):
        assert issubclass(WindowOperator._kinds[section], WindowOperator), section
    with pytest.raises(OperatorDeclarationError, match="TumblingSection is run by"):
        types.new_class("Again", (WindowOperator,), {"sections": (TumblingSection,)})


# -- an operator declared here ---------------------------------------------------------


class EchoSection(Section):
    suffix: str = Field("echo", description="Appended to the echo's name.")


def _declare_echo() -> type[Operator]:
    class Echo(Operator, key="echo", order=25, schema=EchoSection, detector=True):
        """Echo: add a copy of each event under another name."""

        def __init__(self, config: EchoSection) -> None:
            self._suffix = config.suffix
            self.echoed = 0

        def apply(self, event: Event) -> Sequence[Event]:
            self.echoed += 1
            name = f"{event.name}_{self._suffix}"
            return (event, dataclasses.replace(event, name=name, id=uuid7()))

        def counters(self) -> dict[str, int]:
            return {"echoed": self.echoed}

    return Echo


@pytest.fixture
def echo() -> Iterator[type[Operator]]:
    operator = _declare_echo()
    yield operator
    OPERATORS.unregister(operator.key)


def test_a_declared_operator_is_a_rule_key_with_its_schema_order_and_flag(
    echo: type[Operator],
) -> None:
    assert OPERATORS.keys() == (*BUILT_IN_ORDER[:2], "echo", *BUILT_IN_ORDER[2:])
    model = rule_model()
    field = model.model_fields["echo"]
    assert field.description == "Echo: add a copy of each event under another name."
    rule = model.model_validate({"name": "e", "echo": {"suffix": "again"}})
    assert rule.operator_configs() == [(echo, EchoSection(suffix="again"))]
    with pytest.raises(ValidationError) as caught:
        model.model_validate({"name": "e", "echo": {"sufix": "x"}})
    assert [error["loc"] for error in caught.value.errors()] == [("echo", "sufix")]
    assert "echo" not in RuleConfig.model_fields  # made once, from the built-ins list


def test_a_declared_detector_runs_in_its_order_and_its_events_skip_later_steps(
    echo: type[Operator],
) -> None:
    # After range, before deadband: the range rejects 500 before it is echoed, and the
    # deadband holds back the second reading but not its echo.
    doc = {"name": "e", "deadband": {"abs": 100}, "range": {"max": 100}, "echo": {}}
    stage = RuleStage(configs({**doc, "publish": {}}, model=rule_model()), DEFAULTS)
    out = stage.process([reading(1.0), reading(2.0, 1), reading(500.0, 2)])
    assert [(o.event.name, o.event.value) for o in out] == [
        ("temperature", 1.0),
        ("temperature_echo", 1.0),
        ("temperature_echo", 2.0),
    ]
    counters = stage.counters()["rules"]
    assert isinstance(counters, dict)
    assert counters["e"]["created"] == 2
    assert counters["e"]["operators"]["echo"] == {"echoed": 2}


def test_an_unregistered_operator_is_no_rule_key_any_more() -> None:
    OPERATORS.unregister(_declare_echo().key)
    assert "echo" not in OPERATORS
    assert "echo" not in rule_model().model_fields
    with pytest.raises(ValidationError, match="Extra inputs"):
        rule_model().model_validate({"name": "e", "echo": {}})


def test_an_operator_defect_costs_one_event_not_the_gateway() -> None:
    class Brittle(Operator, key="brittle", order=60, schema=EchoSection):
        """Brittle: fails on 13."""

        def __init__(self, config: EchoSection) -> None:
            pass

        def apply(self, event: Event) -> Sequence[Event]:
            if event.value == 13:
                raise ZeroDivisionError("boom")
            return (event,)

        def counters(self) -> dict[str, int]:
            return {}

    try:
        rule = {"name": "w", "brittle": {}, "publish": {}}
        stage = RuleStage(configs(rule, model=rule_model()), DEFAULTS)
    finally:
        OPERATORS.unregister(Brittle.key)
    out = stage.process([reading(1), reading(13, 1), reading(2, 2)])
    assert [o.event.value for o in out] == [1, 2]
    (letter,) = stage.take_dead_letters()
    assert letter.reason == "internal error: ZeroDivisionError: boom"


# -- declaration errors ------------------------------------------------------------------


def _declare(doc: str | None = "Bad: a test operator.", **keywords: Any) -> type:
    def body(namespace: dict[str, Any]) -> None:
        namespace["__doc__"] = doc

    return types.new_class("Bad", (Operator,), keywords, body)


@pytest.mark.parametrize(
    ("keywords", "doc", "message"),
    [
        ({"key": "deadband"}, "x", "key 'deadband' is taken by .*deadband.Deadband"),
        ({"key": "where"}, "x", "key 'where' is reserved for the rule engine"),
        ({"key": "copy"}, "x", "key 'copy' is the name of a config model attribute"),
        ({"key": "two words"}, "x", "key 'two words' is not a plain name"),
        ({"key": "class"}, "x", "key 'class' is not a plain name"),
        ({"key": ""}, "x", "key '' is not a plain name"),
        ({"key": "bad", "order": 1.5}, "x", "order must be an int"),
        ({"key": "bad", "schema": dict}, "x", "schema must be a Section subclass"),
        ({"key": "bad"}, None, "needs a docstring"),
        ({"key": "bad", "order": None}, "x", "needs `order` and `schema`"),
        ({"order": 5}, "x", "needs its `key` too"),
        ({"detector": True}, "x", "needs its `key` too"),
    ],
)
def test_a_wrong_declaration_is_a_programming_error(
    keywords: dict[str, Any], doc: str | None, message: str
) -> None:
    keywords = {"order": 1, "schema": EchoSection, **keywords} if "key" in keywords else keywords
    with pytest.raises(OperatorDeclarationError, match=message):
        _declare(doc, **keywords)
    assert OPERATORS.keys() == BUILT_IN_ORDER
    assert OPERATORS["deadband"] is Deadband
