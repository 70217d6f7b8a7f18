"""Window rules: aggregate each stream over time, or over a number of events.

```yaml
rules:
  - name: greenhouse-minute
    match: {source: "greenhouse*", name: temperature}
    window:
      kind: tumbling          # tumbling | hopping | sliding | session | count
      size: 60s
      by: [source, name]      # one set of windows per key
      time: processing        # or event: the events' own timestamps
      aggregate: [avg, min, max, p90, count]
```

## Kinds

- ``tumbling`` (``size``): back-to-back windows ``[k·size, (k+1)·size)`` aligned
  to the Unix epoch, so a ``1h`` window runs from hh:00 to hh:00 UTC. Every
  value falls in exactly one window.
- ``hopping`` (``size``, ``hop``): windows of length ``size`` starting every
  ``hop``, ``[k·hop, k·hop + size)``. With ``hop < size`` they overlap and each
  value counts in ``size/hop`` windows; ``hop: 10s, size: 60s`` reports the
  last minute every ten seconds.
- ``sliding`` (``size``): on every numeric event at time ``t``, one output with
  the aggregates of the key's values whose time lies in ``(t - size, t]``: the
  event itself and the values that came before it within ``size``. (With
  ``time: event``, values received earlier but stamped after ``t`` are not in
  it.) Sliding windows emit only on events, never on tick or flush.
- ``session`` (``gap``): a run of values less than ``gap`` apart. It closes when
  ``gap`` passes without a value, and spans the first to the last value.
- ``count`` (``count``): every ``count`` values of a key make one window, closed
  by the last of them. Time never closes a count window.

Only numbers are aggregated (``tidegate.rules.operators.window.aggregate``); other events are
counted in ``skipped_non_numeric`` and neither open nor extend a window.

## Time: `processing` or `event`

``time: processing`` (the default) follows the gateway clock, which the rule
stage passes to ``tick(now)``: a value belongs to the window holding the clock
of the latest tick (before the first tick, the event's own time stands in), so
it may land up to one tick interval early; ticking before each event is exact
and cheap (``tick`` does nothing until a window is due). The clock never runs
backwards: a small step back is ignored; a step back of more than
``CLOCK_STEP_BACK`` (1 s: a clock set by NTP after a boot without RTC) emits
every open window as partial and restarts from the new time, counted in
``clock_jumps`` (count windows are left alone).

``time: event`` follows the events' own timestamps. The *watermark* is the
latest time known: the largest event time seen, or the ``now`` of the latest
tick if that is later (live, the gateway clock; in ``tidegate rules test``, the
replayed events' time). A window closes when ``end + allowed_lateness <=
watermark`` (a session when ``last value + gap + allowed_lateness <=
watermark``), so ``allowed_lateness`` is how long a window waits for readings
that are delayed in transit or stamped by a slow device clock.

**Late events.** With ``time: event``, an event whose windows have all closed is
late (sliding: its time is before ``watermark - allowed_lateness``; session: it
joins no open session and a session of it alone would already be closed).
``late: drop``, the only policy, discards it and counts it in ``late_events``:
counting a reading in a later window than the one it was taken in would
misreport that window. Raise ``allowed_lateness`` to keep late readings.
Beware that one event stamped far in the future moves the watermark there, and
every correct event after it is late.

## Output: one event per closed window and key

- ``value``: with one aggregate, its number; with several, a mapping from the
  aggregate names as written to numbers, e.g. ``{"avg": 21.4, "max": 23.0,
  "count": 60}``. An undefined aggregate (``avg`` of an empty window,
  ``stddev`` of one value: see ``tidegate.rules.operators.window.aggregate``) is left out of the
  mapping; a window whose only aggregate is undefined emits nothing and is
  counted in ``undefined_windows``.
- ``time``: the window's end: ``k·hop + size`` (tumbling, hopping), the
  triggering event's time (sliding), the last value's time (session, count).
  A window emitted early by flush carries the time it was cut.
- ``source``, ``name``, ``unit``, ``tags``: those of the key's latest event
  (include ``source`` in ``by`` to keep sources apart), plus the tags
  ``window_start`` and ``window_end`` (RFC 3339, UTC) and ``partial: "true"``
  on windows emitted before their end. The unit is the input's: right for
  avg, min, max, first, last, median, pNN, stddev and sum; count, rate
  (unit/s) and integral (unit·s) have their own.
- a new ``id``; times in processing time are the gateway clock's.

``emit_empty: true`` (tumbling and hopping only): once a key has been seen,
every window without values emits too (``count`` 0, ``sum`` 0.0, the other
aggregates undefined), so a silent sensor shows up as ``count: 0``. Such keys
are kept for ever. After a jump of more than ``MAX_EMPTY_RUN`` (1000) empty
windows, e.g. a clock set forward, only the last 1000 are emitted; the others
are counted in ``skipped_empty_windows``.

## Shutdown

``flush()`` (shutdown, reload) emits every window that holds values right away,
tagged ``partial: "true"``: a gateway should not lose the readings of the
current minute because it restarted, and consumers that want whole windows
drop the partial ones. Empty windows are not flushed; sliding windows have
nothing to flush.

## Memory and counters

A key's open windows hold at most ``max_values_per_key`` values (~76 bytes
each, plus ~700 bytes per key, measured by ``bench/rule_windows.py``); further
events are dropped and counted in ``overflow_events``. Values are kept for
``size`` (+ ``allowed_lateness``), a session's until it closes, a count
window's until it is full. Keys without values are forgotten (except with
``emit_empty``). ``counters()`` reports ``late_events``,
``skipped_non_numeric``, ``overflow_events``, ``undefined_windows``,
``skipped_empty_windows``, ``clock_jumps`` and ``open_windows`` (windows holding
values now).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from tidegate.config.types import Duration
from tidegate.rules.keys import KeyedBy
from tidegate.rules.operators.window.aggregate import validate_aggregate_name
from tidegate.rules.operators.window.aligned import AlignedWindows
from tidegate.rules.operators.window.base import WindowOperator
from tidegate.rules.operators.window.count import CountWindows
from tidegate.rules.operators.window.session import SessionWindows
from tidegate.rules.operators.window.sliding import SlidingWindow

KEY = "window"

WindowKind = Literal["tumbling", "hopping", "sliding", "session", "count"]
PositiveDuration = Annotated[Duration, Field(gt=0)]
AggregateName = Annotated[str, AfterValidator(validate_aggregate_name)]

# The length keys each kind takes; the others must be left out.
_LENGTH_KEYS: dict[str, tuple[str, ...]] = {
    "tumbling": ("size",),
    "hopping": ("size", "hop"),
    "sliding": ("size",),
    "session": ("gap",),
    "count": ("count",),
}


def _one_or_list(value: Any) -> Any:
    # `aggregate: avg` reads naturally for a single aggregate.
    return [value] if isinstance(value, str) else value


class Config(KeyedBy):
    """The value of a rule's ``window:`` key."""

    kind: WindowKind = Field(
        description="tumbling, hopping (size + hop), sliding (size), session (gap) or count.",
    )
    size: PositiveDuration | None = Field(
        default=None, description="Window length (tumbling, hopping, sliding), e.g. 60s."
    )
    hop: PositiveDuration | None = Field(
        default=None, description="Hopping: time between window starts; at most size."
    )
    gap: PositiveDuration | None = Field(
        default=None, description="Session: the silence that closes a session, e.g. 30s."
    )
    count: int | None = Field(default=None, ge=1, description="Count: number of values per window.")
    time: Literal["processing", "event"] = Field(
        default="processing",
        description="processing: the gateway clock; event: the events' own timestamps.",
    )
    allowed_lateness: Duration = Field(
        default=0.0,
        ge=0,
        description="time: event only: how long after its end a window still takes events.",
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
    emit_empty: bool = Field(
        default=False,
        description="tumbling/hopping: emit windows without values too (count 0).",
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

    @model_validator(mode="after")
    def _check_kind(self) -> Config:
        wanted = _LENGTH_KEYS[self.kind]
        for key in ("size", "hop", "gap", "count"):
            given = getattr(self, key) is not None
            if key in wanted and not given:
                raise ValueError(f"a {self.kind} window needs `{key}`")
            if given and key not in wanted:
                raise ValueError(
                    f"`{key}` does not apply to a {self.kind} window (it takes {', '.join(wanted)})"
                )
        if self.hop is not None and self.size is not None and self.hop > self.size:
            raise ValueError(
                f"hop ({self.hop:g}s) is longer than size ({self.size:g}s):"
                " values between windows would be lost"
            )
        if self.allowed_lateness and (self.time != "event" or self.kind == "count"):
            raise ValueError("allowed_lateness applies to time: event windows other than count")
        if self.emit_empty and self.kind not in ("tumbling", "hopping"):
            raise ValueError("emit_empty applies to tumbling and hopping windows only")
        if self.count is not None and self.count > self.max_values_per_key:
            raise ValueError(
                f"count ({self.count}) is above max_values_per_key ({self.max_values_per_key})"
            )
        return self


def build(config: Config) -> WindowOperator:
    """The window operator for one rule (a ``TimedOperator``)."""
    if config.kind == "sliding":
        return SlidingWindow(config)
    if config.kind == "session":
        return SessionWindows(config)
    if config.kind == "count":
        return CountWindows(config)
    return AlignedWindows(config)
