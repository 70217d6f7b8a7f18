"""Finding rule operators without a registry: the modules of ``tidegate.rules`` that are one.

An operator module is a public module of ``tidegate.rules`` that defines, in
that module itself (not imported from elsewhere):

- ``KEY``: the rule key that turns it on (``deadband``, ``window``, …);
- ``Config``: a ``Section`` subclass, the schema of the value under that key;
- ``build(config)``: returns the operator (``apply``; time-driven ones also
  ``tick`` and ``flush``; ``take_dead_letters`` if it rejects events).

and may define:

- ``ORDER`` (int): where the operator runs among a rule's steps, smaller first
  (see ``tidegate.rules.config`` for the fixed order);
- ``SIDE_EVENTS = True``: the operator is a *detector*: it passes the events
  it gets unchanged and adds events of its own (alarms, absence reports),
  which go straight to the rule's outcome instead of through its later steps.

Adding an operator is adding such a module; nothing here is edited. Modules
without ``KEY`` are helpers (``keys``, ``expr``, ``window_base``, …) and are
left alone, as are modules whose names start with ``_``. The rule engine's own
modules (``ENGINE_MODULES``) are never imported by discovery: they import the
rule schema, which is built from what discovery finds.
"""

from __future__ import annotations

import importlib
import keyword
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import tidegate.rules.operators
import tidegate.rules.operators.window
from tidegate.config.types import Section

ENGINE_MODULES = frozenset(
    {
        "chain",
        "compiler",
        "config",
        "expr_location",
        "loader",
        "match",
        "recording",
        "registry",
        "replay",
        "set_fields",
        "stage",
        "topic",
    }
)
"""The rule engine itself: never operators, and importing them here would be circular."""

RESERVED_KEYS = frozenset({"name", "match", "from", "where", "set", "time", "publish", "drop"})
"""Rule keys the engine owns; an operator cannot take one of them."""

# The operators written before ORDER and SIDE_EVENTS existed. A module's own
# attribute wins over this table, so moving the value into the module is safe.
_BUILTIN_ORDER = {
    "absence": 10,
    "range": 20,
    "deadband": 30,
    "on_change": 31,
    "dedup": 32,
    "throttle": 33,
    "window": 40,
    "alarm": 50,
}
_BUILTIN_SIDE_EVENTS = frozenset({"absence", "alarm"})
DEFAULT_ORDER = 35
"""A new operator without ``ORDER`` runs after the stream filters and before windows."""


@dataclass(frozen=True, slots=True)
class OperatorKind:
    """One kind of operator, as found in its module."""

    key: str
    config: type[Section]
    build: Callable[[Any], Any]
    order: int
    side_events: bool
    module: str

    @property
    def summary(self) -> str:
        """The first line of the module's docstring: the key's description in the schema."""
        doc = importlib.import_module(self.module).__doc__ or ""
        return doc.strip().splitlines()[0] if doc.strip() else self.key


class OperatorDiscoveryError(RuntimeError):
    """Two operators claim one key, or one claims a key the engine owns: a programming error."""


def operator_kind(module: ModuleType) -> OperatorKind | None:
    """The operator ``module`` defines, or None if it is not an operator module."""
    key = getattr(module, "KEY", None)
    config = getattr(module, "Config", None)
    build = getattr(module, "build", None)
    if not isinstance(key, str) or not isinstance(config, type) or not callable(build):
        return None
    if not issubclass(config, Section) or config.__module__ != module.__name__:
        return None  # a re-export of another module's operator, or not a schema
    if getattr(build, "__module__", None) != module.__name__:
        return None
    if key in RESERVED_KEYS or keyword.iskeyword(key) or not key.isidentifier():
        raise OperatorDiscoveryError(
            f"{module.__name__}: KEY {key!r} is reserved or not a plain name"
        )
    order = getattr(module, "ORDER", _BUILTIN_ORDER.get(key, DEFAULT_ORDER))
    side = getattr(module, "SIDE_EVENTS", key in _BUILTIN_SIDE_EVENTS)
    return OperatorKind(key, config, build, int(order), bool(side), module.__name__)


def _candidate_modules() -> list[str]:
    names = []
    for package in (tidegate.rules.operators, tidegate.rules.operators.window):
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_") or info.name in ENGINE_MODULES:
                continue
            names.append(f"{package.__name__}.{info.name}")
    return sorted(names)


@cache
def operator_kinds() -> tuple[OperatorKind, ...]:
    """Every operator, in the order a rule runs them (ORDER, then key)."""
    found: dict[str, OperatorKind] = {}
    for name in _candidate_modules():
        kind = operator_kind(importlib.import_module(name))
        if kind is None:
            continue
        if kind.key in found:
            raise OperatorDiscoveryError(
                f"operators {found[kind.key].module} and {kind.module} both use KEY {kind.key!r}"
            )
        found[kind.key] = kind
    return tuple(sorted(found.values(), key=lambda k: (k.order, k.key)))


def operator_keys() -> tuple[str, ...]:
    return tuple(kind.key for kind in operator_kinds())
