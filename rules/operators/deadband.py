"""Deadband: pass a reading only when it moved far enough from the last one passed.

Per key (``by``, default ``[source, name]``) the operator remembers the last
value it passed. The first event of a key always passes; a later one passes
only when it differs from that remembered value by *more than* the band:

- ``abs: 0.5`` — a fixed band in the value's unit;
- ``percent: 2`` — 2 % of the magnitude of the last passed value. Around zero
  the band shrinks to nothing: when the last passed value is 0, any change
  passes (and a repeated 0 is dropped).

Comparing with the last *passed* value (not the last seen) means a slow drift
still gets through once it adds up to more than the band.

Values that are not finite numbers (strings, booleans, mappings, NaN, inf)
pass unchanged, are counted in ``non_numeric`` and leave the remembered value
alone. Dropped events are counted in ``dropped``.

```yaml
rules:
  - name: temp-deadband
    match: {name: temperature}
    deadband: {abs: 0.5}
  - name: pressure-deadband
    match: {name: pressure}
    deadband: {percent: 2, by: [source, name, tags.port]}
```
"""

from __future__ import annotations

import math
from typing import Self

from pydantic import Field, model_validator

from tidegate.event import Event
from tidegate.rules.keys import KeyedBy, StreamKey, key_function
from tidegate.rules.operator import Operator
from tidegate.rules.operators.range_check import as_number


class DeadbandSection(KeyedBy):
    abs: float | None = Field(
        None,
        ge=0,
        description="Band in the value's unit: pass when the value differs from the last "
        "passed value of the key by more than this.",
    )
    percent: float | None = Field(
        None,
        ge=0,
        description="Band as a percentage of the last passed value's magnitude; when that "
        "value is 0 any change passes.",
    )

    @model_validator(mode="after")
    def _exactly_one_band(self) -> Self:
        if (self.abs is None) == (self.percent is None):
            raise ValueError("give exactly one of `abs` or `percent`")
        return self


class Deadband(Operator, key="deadband", order=30, schema=DeadbandSection):
    """Deadband: pass a reading only when it moved far enough from the last one passed."""

    def __init__(self, config: DeadbandSection) -> None:
        self._key = key_function(config.by)
        # Exactly one of the two is given: the other adds nothing to the band.
        self._abs = config.abs or 0.0
        self._fraction = (config.percent or 0.0) / 100.0
        self._last_passed: dict[StreamKey, float] = {}
        self.dropped = 0
        self.non_numeric = 0

    def counters(self) -> dict[str, int]:
        return {"dropped": self.dropped, "non_numeric": self.non_numeric}

    def apply(self, event: Event) -> tuple[Event, ...]:
        number = as_number(event.value)
        if number is None or not math.isfinite(number):
            self.non_numeric += 1
            return (event,)
        key = self._key(event)
        reference = self._last_passed.get(key)
        if reference is not None:
            band = self._abs + self._fraction * abs(reference)
            if abs(number - reference) <= band:
                self.dropped += 1
                return ()
        self._last_passed[key] = number
        return (event,)
