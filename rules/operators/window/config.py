"""The schema of a rule's ``window:``: one model per kind, chosen by ``kind``.

A key that does not belong to the kind (``gap`` on a tumbling window,
``emit_empty`` on a sliding one) is a schema error at its position, and the
window code gets a model that holds exactly what its kind needs. What the
keys mean is documented in ``tidegate.rules.operators.window.operator``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from tidegate.config.types import Duration
from tidegate.rules.keys import KeyedBy
from tidegate.rules.operators.window.aggregate import validate_aggregate_name

WindowKind = Literal["tumbling", "hopping", "sliding", "session", "count"]
PositiveDuration = Annotated[Duration, Field(gt=0)]
AggregateName = Annotated[str, AfterValidator(validate_aggregate_name)]


def _one_or_list(value: Any) -> Any:
    # `aggregate: avg` reads naturally for a single aggregate.
    return [value] if isinstance(value, str) else value


class _Window(KeyedBy):
    """What every kind of window takes."""

    # Each kind narrows `kind` to its own name; declared here so it is listed first.
    kind: WindowKind = Field(
        description="tumbling, hopping (size + hop), sliding (size), session (gap) or count.",
    )
    time: Literal["processing", "event"] = Field(
        default="processing",
        description="processing: the gateway clock; event: the events' own timestamps.",
    )
    late: Literal["drop"] = Field(
        default="drop",
        description="Events for windows already closed: drop (counted in late_events).",
    )
    aggregate: Annotated[list[AggregateName], BeforeValidator(_one_or_list)] = Field(
        default_factory=lambda: ["avg"],
        min_length=1,
        description=(
            "What to report: count, sum, avg, min, max, first, last, stddev, median, "
            "pNN (p90, p99.9), rate, integral. One gives a number, several a mapping."
        ),
    )
    max_values_per_key: int = Field(
        default=100_000,
        ge=1,
        description="Most values a key's open windows hold; more are dropped and counted.",
    )

    @field_validator("aggregate")
    @classmethod
    def _no_repeats(cls, names: list[str]) -> list[str]:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"aggregate lists {', '.join(repeated)} more than once")
        return names

    @property
    def lateness(self) -> float:
        """How long after its end a window still takes events (time: event)."""
        return 0.0

    @property
    def most_values(self) -> int:
        """The most values one window can hold."""
        return self.max_values_per_key


class _TimeWindow(_Window):
    """A window that time closes: it may wait for late events."""

    allowed_lateness: Duration = Field(
        default=0.0,
        ge=0,
        description="time: event only: how long after its end a window still takes events.",
    )

    @property
    def lateness(self) -> float:
        return self.allowed_lateness

    @model_validator(mode="after")
    def _lateness_needs_event_time(self) -> Self:
        if self.allowed_lateness and self.time != "event":
            raise ValueError("allowed_lateness applies to time: event windows only")
        return self


class TumblingSection(_TimeWindow):
    """Back-to-back windows of ``size``, aligned to the Unix epoch."""

    kind: Literal["tumbling"] = Field(description="tumbling: back-to-back windows of `size`.")
    size: PositiveDuration = Field(description="Window length, e.g. 60s.")
    emit_empty: bool = Field(
        default=False, description="Emit windows without values too (count 0)."
    )


class HoppingSection(_TimeWindow):
    """Windows of ``size`` starting every ``hop``, aligned to the Unix epoch."""

    kind: Literal["hopping"] = Field(description="hopping: windows of `size` every `hop`.")
    size: PositiveDuration = Field(description="Window length, e.g. 60s.")
    hop: PositiveDuration = Field(description="Time between window starts; at most size.")
    emit_empty: bool = Field(
        default=False, description="Emit windows without values too (count 0)."
    )

    @model_validator(mode="after")
    def _hop_within_size(self) -> Self:
        if self.hop > self.size:
            raise ValueError(
                f"hop ({self.hop:g}s) is longer than size ({self.size:g}s):"
                " values between windows would be lost"
            )
        return self


class SlidingSection(_TimeWindow):
    """On every event, the aggregates of the last ``size``."""

    kind: Literal["sliding"] = Field(description="sliding: on every event, the last `size`.")
    size: PositiveDuration = Field(description="Window length, e.g. 5m.")


class SessionSection(_TimeWindow):
    """Bursts of values separated by at least ``gap`` of silence."""

    kind: Literal["session"] = Field(description="session: values less than `gap` apart.")
    gap: PositiveDuration = Field(description="The silence that closes a session, e.g. 30s.")


class CountSection(_Window):
    """Every ``count`` values of a key."""

    kind: Literal["count"] = Field(description="count: every `count` values of a key.")
    count: int = Field(ge=1, description="Number of values per window.")

    @property
    def most_values(self) -> int:
        return self.count

    @model_validator(mode="after")
    def _count_fits(self) -> Self:
        if self.count > self.max_values_per_key:
            raise ValueError(
                f"count ({self.count}) is above max_values_per_key ({self.max_values_per_key})"
            )
        return self


WindowKindSection = (
    TumblingSection | HoppingSection | SlidingSection | SessionSection | CountSection
)
"""The validated value of a rule's ``window:``."""

WindowSection = Annotated[WindowKindSection, Field(discriminator="kind")]
"""The schema of a rule's ``window:`` key."""
