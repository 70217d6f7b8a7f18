"""What the rule engine's tests share: a stage made from rule documents, and readings."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import yaml

from tidegate.event import Event, Value, new_event
from tidegate.outgoing import Outgoing
from tidegate.rules.config import RuleConfig
from tidegate.rules.stage import RouteDefaults, RuleStage

DEFAULTS = RouteDefaults(gateway="gw", prefix="tg/gw", topic="{prefix}/{source}/{name}", qos=1)
T0 = 1_800_000_000.0


def configs(*docs: dict[str, Any], model: type[RuleConfig] = RuleConfig) -> list[RuleConfig]:
    return [model.model_validate(doc) for doc in docs]


def make_stage(*docs: dict[str, Any]) -> RuleStage:
    return RuleStage(configs(*docs), DEFAULTS)


def reading(value: Value, t: float = 0.0, name: str = "temperature", **kw: Any) -> Event:
    return new_event(kw.pop("source", "gh"), name, value, time=T0 + t, **kw)


def topics(out: list[Outgoing]) -> list[tuple[str, Value]]:
    return [(o.topic, o.event.value) for o in out]


def docstring_rules(module: ModuleType) -> list[dict[str, Any]]:
    """The rules of the ``rules:`` YAML examples in a module's docstring."""
    blocks = re.findall(r"```yaml\n(.*?)```", module.__doc__ or "", re.DOTALL)
    found: list[dict[str, Any]] = []
    for block in blocks:
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and isinstance(doc.get("rules"), list):
            found += doc["rules"]
    return found
