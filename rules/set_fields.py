"""The ``set`` step: computed fields — calibration, renames, units, tags.

```yaml
rules:
  - name: to-fahrenheit
    match: {name: temperature}
    set:
      value: value * 1.8 + 32          # an expression over the incoming event
      unit: "'°F'"                     # text is an expression too: quote it inside
      name: "'temperature_f'"
      tags.room: coalesce(tags.room, 'hall')
      tags.raw: str(value)
      tags.debug: null                 # null removes a tag (or the unit)
```

Each key names a field of the event: ``value``, ``value.KEY`` (one entry of
a mapping value), ``name``, ``source``, ``unit``, ``time`` (epoch seconds)
or ``tags.TAG``. Each value is an expression in the rule expression language
(``tidegate.rules.expr``), or a YAML number, ``true``/``false`` or ``null``
taken as it is. A plain word such as ``degF`` is an expression (an unknown
name, refused at load): write text as ``"'degF'"``.

Every expression reads the event as it came into the step, so the order of
the keys does not matter: with ``value: value * 2`` and ``tags.raw:
str(value)`` the tag holds the old value. ``value`` is set before the
``value.KEY`` entries. The event keeps its ``id``: it is the same reading,
transformed.

What each field accepts, checked per event (a mismatch is an expression
runtime error: the rule counts it and dead-letters the event):
``value`` a number, bool, text or a mapping of those; ``value.KEY`` one of
those but a mapping, or null to remove the entry — and the event's value
must be a mapping; ``name`` and ``source`` non-empty text; ``unit`` text or
null; ``time`` a finite number; ``tags.TAG`` text, a number or bool (stored
as its text: ``2.5``, ``true``), or null to remove the tag.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, cast

from pydantic import AfterValidator, Field

from tidegate.event import Event, Scalar, Value
from tidegate.rules.expr.errors import ExpressionError, ExpressionRuntimeError
from tidegate.rules.expr.location import expression_error
from tidegate.rules.expr.values import render

if TYPE_CHECKING:
    from tidegate.rules.expr.expression import Expression

_PLAIN_TARGETS = ("value", "name", "source", "unit", "time")
_KEYED_TARGET = re.compile(r"^(value|tags)\.([A-Za-z0-9_][A-Za-z0-9_.-]*)$")
_BARE_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SETTABLE = ("value", "value.KEY", "name", "source", "unit", "time", "tags.TAG")


def check_target(target: str) -> str:
    """Schema validator for a ``set`` key."""
    if target in _PLAIN_TARGETS or _KEYED_TARGET.match(target):
        return target
    close = difflib.get_close_matches(target, _PLAIN_TARGETS, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(f"cannot set '{target}'{hint}; settable: {', '.join(SETTABLE)}")


def compile_set_value(text: str) -> Expression:
    """Compile one ``set`` expression, with a hint when a bare word was meant as text."""
    # The expression language loads with the first rule that uses it, not with the engine.
    from tidegate.rules.expr.compiler import compile_expression  # noqa: PLC0415

    try:
        return compile_expression(text)
    except ExpressionError as exc:
        if _BARE_WORD.match(text.strip()) and exc.message.startswith("unknown name"):
            raise ExpressionError(
                f"{exc.message}; to set the text '{text.strip()}', quote it: \"'{text.strip()}'\"",
                exc.line,
                exc.column,
            ) from None
        raise


def check_set_value(value: Any) -> Any:
    """Schema validator for a ``set`` value: an expression, or a number, bool or null."""
    if isinstance(value, str):
        try:
            compile_set_value(value)
        except ExpressionError as exc:
            raise expression_error(exc) from None
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ValueError("must be an expression (text), a number, true/false or null")


def _constant(source: Any) -> tuple[bool, object]:
    """(True, value) when ``source`` gives the same value for every event, else (False, None).

    The language has no clock or randomness: an expression that reads no event
    field is a constant (``'°F'``, ``2 * 3``).
    """
    if not isinstance(source, str):
        return True, source
    expression = compile_set_value(source)
    if expression.names:
        return False, None
    return True, expression.evaluate(_NO_EVENT)


def check_constants(spec: dict[str, Any]) -> dict[str, Any]:
    """Schema validator: a constant must suit its field (``unit: 5`` is refused at load)."""
    for target, source in spec.items():
        is_constant, value = _constant(source)
        if is_constant:
            try:
                _checker(target)(value)
            except ExpressionRuntimeError as exc:
                raise ValueError(str(exc)) from None
    return spec


SetTarget = Annotated[str, AfterValidator(check_target)]
SetValue = Annotated[
    Any,
    AfterValidator(check_set_value),
    Field(
        json_schema_extra={
            "anyOf": [
                {"type": "string"},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "null"},
            ]
        }
    ),
]
SetSpec = Annotated[dict[SetTarget, SetValue], AfterValidator(check_constants)]
"""The value of a rule's ``set:`` key, as validated."""


# ------------------------------------------------------------------- runtime

Getter = Callable[[Event], object]
Checker = Callable[[object], object]

_NO_EVENT = Event(source="", name="", value=0, time=0.0, id="")
"""Evaluates constant expressions; they read nothing from it."""

# The positions of Event's fields, in its constructor's order.
_SOURCE, _NAME, _VALUE, _TIME, _ID, _SEQ, _UNIT, _TAGS, _TIME_SOURCE = range(9)
_FIELD_INDEX = {"source": _SOURCE, "name": _NAME, "value": _VALUE, "time": _TIME, "unit": _UNIT}


def _kind(result: object) -> str:
    if result == "":
        return "empty text"
    kinds = {type(None): "null", bool: "bool", int: "int", float: "float", str: "string"}
    kinds |= {list: "list", dict: "mapping"}
    return kinds.get(type(result), type(result).__name__)


def _scalar(target: str, result: object) -> Scalar:
    if isinstance(result, int | float | str):  # bool is an int
        return result
    raise ExpressionRuntimeError(f"set.{target}: needs a number, bool or text, got {_kind(result)}")


def _check_value(result: object) -> Value:
    if isinstance(result, dict):
        return {str(k): _scalar(f"value.{k}", v) for k, v in result.items()}
    return _scalar("value", result)


def _text_checker(target: str, *, nullable: bool) -> Checker:
    wanted = "text or null" if nullable else "non-empty text"

    def check(result: object) -> str | None:
        if (result is None and nullable) or (type(result) is str and result):
            return result
        raise ExpressionRuntimeError(f"set.{target}: needs {wanted}, got {_kind(result)}")

    return check


def _check_time(result: object) -> float:
    if isinstance(result, int | float) and not isinstance(result, bool) and math.isfinite(result):
        return float(result)
    raise ExpressionRuntimeError(f"set.time: needs a finite number, got {_kind(result)}")


def _tag_checker(target: str) -> Checker:
    def check(result: object) -> str | None:
        if result is None or isinstance(result, str):
            return result
        if isinstance(result, int | float):  # bool is an int: stored as 'true' / 'false'
            return render(result)
        raise ExpressionRuntimeError(
            f"set.{target}: needs text, a number or bool, got {_kind(result)}"
        )

    return check


def _entry_checker(target: str) -> Checker:
    def check(result: object) -> Scalar | None:
        return None if result is None else _scalar(target, result)

    return check


def _checker(target: str) -> Checker:
    """The check (and conversion) of what ``target`` is set to."""
    if target == "value":
        return _check_value
    if target == "time":
        return _check_time
    if target in ("name", "source", "unit"):
        return _text_checker(target, nullable=target == "unit")
    if target.startswith("tags."):
        return _tag_checker(target)
    return _entry_checker(target)


def _value_of(source: Any, check: Checker) -> tuple[Getter | None, object]:
    """(getter, None) for an expression over the event; (None, checked value) for a constant."""
    is_constant, value = _constant(source)
    if is_constant:
        return None, check(value)
    expression = compile_set_value(source)
    return expression.evaluate, None


class SetFields:
    """The compiled ``set`` step: one event in, the transformed event out."""

    def __init__(self, spec: dict[str, Any]) -> None:
        # (position in Event's fields, getter or None for a constant, check, constant)
        fields: list[tuple[int, Getter | None, Checker, object]] = []
        entries: list[tuple[str, Getter | None, Checker, object]] = []
        tags: list[tuple[str, Getter | None, Checker, object]] = []
        for target, source in spec.items():
            check = _checker(target)
            get, constant = _value_of(source, check)
            keyed = _KEYED_TARGET.match(target)
            if keyed is None:
                fields.append((_FIELD_INDEX[target], get, check, constant))
            elif keyed.group(1) == "value":
                entries.append((keyed.group(2), get, check, constant))
            else:
                tags.append((keyed.group(2), get, check, constant))
        self._fields = tuple(fields)
        self._entries = tuple(entries)
        self._tags = tuple(tags)

    def apply(self, event: Event) -> tuple[Event]:
        fields: list[Any] = [
            event.source,
            event.name,
            event.value,
            event.time,
            event.id,
            event.seq,
            event.unit,
            event.tags,
            event.time_source,
        ]
        for index, get, check, constant in self._fields:
            fields[index] = constant if get is None else check(get(event))
            if index == _TIME:
                fields[_TIME_SOURCE] = None  # a time the rule set is not the device's
        if self._entries:
            fields[_VALUE] = self._set_entries(event, fields[_VALUE])
        if self._tags:
            fields[_TAGS] = self._set_tags(event, fields[_TAGS])
        return (Event(*fields),)

    def _set_entries(self, event: Event, value: Value) -> Value:
        if not isinstance(value, dict):
            raise ExpressionRuntimeError(
                f"set.value.{self._entries[0][0]}: the value is {_kind(value)}, not a mapping"
            )
        mapping = dict(value)
        for key, get, check, constant in self._entries:
            result = constant if get is None else check(get(event))
            if result is None:
                mapping.pop(key, None)
            else:
                mapping[key] = cast(Scalar, result)  # the entry checker made it one
        return mapping

    def _set_tags(self, event: Event, tags: dict[str, str] | None) -> dict[str, str] | None:
        updated = dict(tags) if tags else {}
        for tag, get, check, constant in self._tags:
            text = constant if get is None else check(get(event))
            if text is None:
                updated.pop(tag, None)
            else:
                updated[tag] = cast(str, text)  # the tag checker made it text
        return updated or None
