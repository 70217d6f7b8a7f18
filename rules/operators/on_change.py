"""On change: pass an event only when its value differs from the key's last passed value.

Per key (``by``, default ``[source, name]``) the first event always passes;
later events pass only when their value is not the same as the last passed
one. "The same" is defined by ``value_identity``: numbers compare by value
(``1`` and ``1.0`` are the same, NaN is the same as NaN), booleans only equal
booleans (``true`` is not ``1``), strings compare exactly, and mappings
compare key by key. Dropped events are counted in ``dropped``.

```yaml
rules:
  - name: door-changes
    match: {name: door}
    on_change: {}
  - name: mode-changes
    on_change: {by: [source, name, tags.zone]}
```
"""

from __future__ import annotations

import math
from collections.abc import Hashable

from tidegate.event import Event, Value
from tidegate.rules.keys import KeyedBy, StreamKey, key_function
from tidegate.rules.operator import Operator


def value_identity(value: Value) -> Hashable:
    """A hashable stand-in for a value: two values are "the same" when these are equal.

    Shared with ``dedup`` so both operators agree on what a repeated value is.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", "nan") if math.isnan(value) else ("number", value)
    if isinstance(value, str):
        return ("str", value)
    return ("mapping", tuple(sorted((k, value_identity(v)) for k, v in value.items())))


class OnChangeSection(KeyedBy):
    """No options besides ``by``."""


class OnChange(Operator, key="on_change", order=31, schema=OnChangeSection):
    """On change: pass an event only when its value differs from the key's last passed value."""

    def __init__(self, config: OnChangeSection) -> None:
        self._key = key_function(config.by)
        self._last_passed: dict[StreamKey, Hashable] = {}
        self.dropped = 0

    def counters(self) -> dict[str, int]:
        return {"dropped": self.dropped}

    def apply(self, event: Event) -> tuple[Event, ...]:
        key = self._key(event)
        identity = value_identity(event.value)
        if key in self._last_passed and self._last_passed[key] == identity:
            self.dropped += 1
            return ()
        self._last_passed[key] = identity
        return (event,)
