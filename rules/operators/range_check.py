"""Range: keep physically plausible readings, dead-letter (or drop) the rest.

A reading is plausible when ``min <= value <= max`` (both bounds inclusive;
either may be left out). A reading outside the range is never passed on:

- ``action: dead_letter`` (default) hands it to the rule stage with a reason,
  e.g. ``value 120 is above the maximum 85``; the stage stores it in the
  outbox's dead-letter table, so a broken sensor can be diagnosed later.
- ``action: drop`` discards it.

Both are counted (``dead_lettered``, ``dropped``). A NaN reading is outside
every range. A value that is not a number (a string, a boolean, a mapping) is
not this operator's business: it passes unchanged and is counted in
``non_numeric``.

How the stage gets dead letters: ``apply`` returns nothing for a rejected
event and keeps ``(event, reason)``; the rule takes them after each step (a
``RejectingOperator``: see ``tidegate.rules.operator``) and forwards them.

```yaml
rules:
  - name: plausible
    match: {name: temperature}
    range: {min: -40, max: 85, action: dead_letter}
  - name: no-negative-counts
    match: {name: pulses}
    range: {min: 0, action: drop}
```
"""

from __future__ import annotations

import math
from typing import Literal, Self

from pydantic import Field, model_validator

from tidegate.config.types import Section
from tidegate.event import Event, Value
from tidegate.rules.operator import RejectingOperator


def as_number(value: Value) -> float | None:
    """The value as a float if it is a number (int or float, NaN and inf included).

    Booleans are not numbers here, although Python treats them as ints: a
    contact's ``true`` is a state, not the reading 1.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def number_text(x: float) -> str:
    """A number as users wrote it: ``30`` rather than ``30.0``, full precision otherwise."""
    x = float(x)  # event times may be ints at run time (e.g. replayed from JSON)
    return str(int(x)) if x.is_integer() else repr(x)


class RangeSection(Section):
    min: float | None = Field(
        None, description="Lowest plausible value (inclusive); leave out for no lower bound."
    )
    max: float | None = Field(
        None, description="Highest plausible value (inclusive); leave out for no upper bound."
    )
    action: Literal["dead_letter", "drop"] = Field(
        "dead_letter",
        description="What happens to a value outside the range: `dead_letter` keeps it "
        "in the dead-letter table with the reason, `drop` discards it. Both are counted.",
    )

    @model_validator(mode="after")
    def _check_bounds(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("give `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min:g}) is greater than `max` ({self.max:g})")
        return self


class RangeCheck(RejectingOperator, key="range", order=20, schema=RangeSection):
    """Range: keep physically plausible readings, dead-letter (or drop) the rest."""

    def __init__(self, config: RangeSection) -> None:
        super().__init__(config)
        self._min = -math.inf if config.min is None else config.min
        self._max = math.inf if config.max is None else config.max
        self._dead_letter = config.action == "dead_letter"
        self.dead_lettered = 0
        self.dropped = 0
        self.non_numeric = 0

    def counters(self) -> dict[str, int]:
        return {
            "dead_lettered": self.dead_lettered,
            "dropped": self.dropped,
            "non_numeric": self.non_numeric,
        }

    def apply(self, event: Event) -> tuple[Event, ...]:
        number = as_number(event.value)
        if number is None:
            self.non_numeric += 1
            return (event,)
        if self._min <= number <= self._max:
            return (event,)
        if self._dead_letter:
            self.dead_lettered += 1
            self.reject(event, self._reason(number))
        else:
            self.dropped += 1
        return ()

    def _reason(self, number: float) -> str:
        if math.isnan(number):
            return "value is NaN (not a number)"
        if number < self._min:
            return f"value {number_text(number)} is below the minimum {number_text(self._min)}"
        return f"value {number_text(number)} is above the maximum {number_text(self._max)}"
