"""Per-key state: which events share a window, a deadband or an alarm.

Operators keep state per key. A key is made of event fields: ``source``,
``name``, ``unit`` or ``tags.<tag>``. The default, ``[source, name]``, gives
every stream (one sensor reading) its own state.

```yaml
by: [source, name, tags.room]
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import Field, field_validator

from tidegate.config.types import Section
from tidegate.event import Event

StreamKey = tuple[str | None, ...]
KeyFunction = Callable[[Event], StreamKey]

_PLAIN_FIELDS = ("source", "name", "unit")


def _field_getter(field: str) -> Callable[[Event], str | None]:
    if field == "source":
        return lambda e: e.source
    if field == "name":
        return lambda e: e.name
    if field == "unit":
        return lambda e: e.unit
    tag = field.removeprefix("tags.")

    def get_tag(e: Event) -> str | None:
        return e.tags.get(tag) if e.tags else None

    return get_tag


def validate_key_field(field: str) -> str:
    if field in _PLAIN_FIELDS or (field.startswith("tags.") and len(field) > 5):
        return field
    raise ValueError(f"'{field}' is not a key field; use source, name, unit or tags.<tag>")


def key_function(fields: Sequence[str]) -> KeyFunction:
    """Build a function that maps an event to its key tuple."""
    getters = [_field_getter(validate_key_field(f)) for f in fields]
    if fields == ["source", "name"] or tuple(fields) == ("source", "name"):
        return lambda e: (e.source, e.name)  # the common case, without the loop
    return lambda e: tuple(g(e) for g in getters)


class KeyedBy(Section):
    """Mixin for operator configs whose state is kept per key."""

    by: list[str] = Field(
        default_factory=lambda: ["source", "name"],
        description="Event fields that make the key: source, name, unit, tags.<tag>.",
        min_length=1,
    )

    @field_validator("by")
    @classmethod
    def _check_by(cls, value: list[str]) -> list[str]:
        for field in value:
            validate_key_field(field)
        return value
