"""The operators a rule can use, by key, filled in by the operator classes themselves.

An operator registers itself when its class is created, from the keywords of
its declaration (``tidegate.rules.operator``); the package's list of imports
(``tidegate.rules.operators.builtins``) registers the built-in ones. The rule
schema (``tidegate.rules.config``) gets one optional key per registered
operator, and a rule runs its operators in their declared order.

A wrong declaration is a programming error, raised when the class is created:
a key taken by another operator, by the engine or by the config models, a
key that is not a plain name, a schema that is not one, a class without the docstring that describes
its key.
"""

from __future__ import annotations

import keyword
import types
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from tidegate.config.types import Section

if TYPE_CHECKING:
    from tidegate.rules.operator import Operator

RESERVED_KEYS = frozenset(
    {"name", "match", "from", "where", "set", "time", "publish", "drop", "action"}
)
"""Rule keys the engine owns; an operator cannot take one of them."""


class OperatorDeclarationError(TypeError):
    """An operator class declared wrongly (see the module docstring)."""


def _is_schema(schema: Any) -> bool:
    """A ``Section`` subclass, or an ``Annotated`` union of them (one model per kind)."""
    if isinstance(schema, type):
        return issubclass(schema, Section)
    if get_origin(schema) is not Annotated:
        return False
    union = get_args(schema)[0]
    if get_origin(union) not in (Union, types.UnionType):
        return False
    return all(isinstance(m, type) and issubclass(m, Section) for m in get_args(union))


def _name(operator: type[Operator]) -> str:
    return f"{operator.__module__}.{operator.__qualname__}"


class OperatorRegistry:
    """Operator classes by key; ``in_order`` is the order a rule runs them."""

    def __init__(self) -> None:
        self._by_key: dict[str, type[Operator]] = {}
        self._in_order: tuple[type[Operator], ...] | None = None

    def register(self, operator: type[Operator]) -> None:
        """Add a declared operator class; raise OperatorDeclarationError if it cannot be one."""
        key, where = operator.key, _name(operator)
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise OperatorDeclarationError(
                f"{where}: key {key!r} is not a plain name (letters, digits and _)"
            )
        if key in RESERVED_KEYS:
            raise OperatorDeclarationError(
                f"{where}: key {key!r} is reserved for the rule engine "
                f"({', '.join(sorted(RESERVED_KEYS))})"
            )
        if hasattr(Section, key):  # a field of that name would hide the model's own
            raise OperatorDeclarationError(
                f"{where}: key {key!r} is the name of a config model attribute"
            )
        taken = self._by_key.get(key)
        if taken is not None:
            raise OperatorDeclarationError(f"{where}: key {key!r} is taken by {_name(taken)}")
        if type(operator.order) is not int:
            raise OperatorDeclarationError(f"{where}: order must be an int, not {operator.order!r}")
        if not _is_schema(operator.schema):
            raise OperatorDeclarationError(
                f"{where}: schema must be a Section subclass or an Annotated union of them"
            )
        if not (operator.__doc__ or "").strip():
            raise OperatorDeclarationError(
                f"{where}: needs a docstring (its first line describes the rule key {key!r})"
            )
        self._by_key[key] = operator
        self._in_order = None

    def unregister(self, key: str) -> None:
        """Forget an operator (tests that declare one of their own clean up with it)."""
        del self._by_key[key]
        self._in_order = None

    def __getitem__(self, key: str) -> type[Operator]:
        return self._by_key[key]

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    def in_order(self) -> tuple[type[Operator], ...]:
        """Every operator, in the order a rule runs them: by order, then key."""
        if self._in_order is None:
            self._in_order = tuple(sorted(self._by_key.values(), key=lambda o: (o.order, o.key)))
        return self._in_order

    def keys(self) -> tuple[str, ...]:
        return tuple(operator.key for operator in self.in_order())


OPERATORS = OperatorRegistry()
"""The registry the operator classes declare themselves into."""
