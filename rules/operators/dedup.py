"""Dedup: drop an event whose key and value equal one passed within the window.

Each event that passes opens a window of ``within`` seconds from its own time.
A later-arriving event with the same key (``by``, default ``[source, name]``)
and the same value (as ``on_change`` defines it: ``1`` and ``1.0`` are the
same, ``true`` and ``1`` are not) is a duplicate when its time falls in one of
those windows: ``passed <= time < passed + within``. Only passed events open a
window, so a value repeated every second with ``within: 60s`` passes once a
minute. Dropped events are counted in ``dropped``.

**Late and out-of-order events** follow the same definition. An event up to
``allowed_lateness`` (default: as long as ``within``) behind its *clock* is
compared with every earlier pass of its value, and each pass is remembered
until the clock is past ``passed + within + allowed_lateness``. The clock
depends on the rule's ``time``:

- ``time: processing``: the rule's clock, i.e. the gateway clock as of the
  latest tick (in ``tidegate rules test``, the replayed events' time). Event
  times never move it: an event stamped ahead of it (a device clock running
  fast, even a day ahead) is compared and remembered like any other, and
  changes nothing for the other events. Before the first tick no event is late.
- ``time: event``: each key's own clock, the newest time of its own events. So
  one stream's stamps, however wrong (a device clock set a day ahead, or one
  lagging an hour), never make another stream's events late. A stream whose
  device stamps one event far in the future (or whose device clock is set
  back) is itself judged against its newest stamp: its later, correct events
  are more than ``allowed_lateness`` behind it, so they pass unchecked (counted
  in ``too_late``) until its time catches up — the event-time rule, kept to the
  one stream. (Windows differ: they need
  one watermark for all keys to close the windows of silent streams; ``dedup``
  emits nothing on time, so each stream keeps its own clock.)

An event older than a pass (out of order) is compared with the other passes;
if none covers it, it passes and opens a window of its own, so a value may have
several windows open. An event more than ``allowed_lateness`` behind its clock
(or with a time that is not a finite number) is not compared: it passes and is
counted in ``too_late``, as its passes may have been forgotten — raise
``allowed_lateness`` if that counter grows.

**Clock steps** (``time: processing``). A tick more than ``CLOCK_STEP_BACK``
(1 s) before the clock (the gateway clock was set back) forgets every pass and
moves the clock back to it, counted in ``clock_jumps``; otherwise every event
would be too late until the clock caught up.

Memory is bounded: at most ``max_entries`` passes are remembered (``entries``
is how many are now); beyond, passes are forgotten early and counted in
``evicted`` (a repeat of such a value may then pass again inside its window):
the oldest passes (``time: processing``), or the oldest of the stream that has
been silent longest (``time: event``: a stream that stops keeps its last passes,
as its clock stops with it, until newer passes push them out).

```yaml
rules:
  - name: no-repeats
    match: {source: rfid-reader}
    dedup: {within: 60s}
  - name: no-repeated-codes
    dedup: {within: 5m, by: [name], max_entries: 1000, allowed_lateness: 10m}
```
"""

from __future__ import annotations

import math

from pydantic import Field

from tidegate.config.types import Duration
from tidegate.event import Event
from tidegate.rules.keys import KeyedBy, key_function
from tidegate.rules.operator import Operator, RuleTime, TimedOperator
from tidegate.rules.operators.dedup_passes import ClockPasses, StreamPasses, Verdict
from tidegate.rules.operators.on_change import value_identity


class DedupSection(KeyedBy):
    within: Duration = Field(
        gt=0, description="Window, e.g. `60s`: a repeat of a value passed this recently is dropped."
    )
    allowed_lateness: Duration | None = Field(
        None,
        ge=0,
        description="How far behind its clock (processing: the gateway clock; event: its stream's "
        "newest time) an event may be and still be compared (later ones pass, counted in "
        "`too_late`); default: as long as `within`.",
    )
    max_entries: int = Field(
        10_000,
        ge=1,
        description="Most passes (key, value and time) remembered; beyond it the oldest are "
        "forgotten (time: event: those of the stream silent longest), counted in `evicted`.",
    )


class Dedup(Operator, key="dedup", order=32, schema=DedupSection):
    """Dedup: drop an event whose key and value equal one passed within the window."""

    _passes: ClockPasses | StreamPasses

    @classmethod
    def build(cls, config: DedupSection, time: RuleTime = "processing") -> Dedup:
        """The clock differs by the rule's time: the ticks, or each stream's own newest time."""
        return StreamDedup(config) if time == "event" else ClockDedup(config)

    def __init__(self, config: DedupSection) -> None:
        self._key = key_function(config.by)
        self._within = config.within
        self._lateness = (
            config.within if config.allowed_lateness is None else config.allowed_lateness
        )
        self._max_entries = config.max_entries
        self.dropped = 0
        self.too_late = 0
        self.evicted = 0
        self.clock_jumps = 0

    @property
    def entries(self) -> int:
        """Passes remembered now."""
        return self._passes.entries

    def counters(self) -> dict[str, int]:
        return {
            "dropped": self.dropped,
            "too_late": self.too_late,
            "evicted": self.evicted,
            "clock_jumps": self.clock_jumps,
            "entries": self.entries,
        }

    def apply(self, event: Event) -> tuple[Event, ...]:
        t = event.time
        if not math.isfinite(t):  # NaN or infinite: no window can hold it
            self.too_late += 1
            return (event,)
        verdict, evicted = self._passes.offer(self._key(event), value_identity(event.value), t)
        self.evicted += evicted
        if verdict is Verdict.DROPPED:
            self.dropped += 1
            return ()
        if verdict is Verdict.TOO_LATE:
            self.too_late += 1
        return (event,)


class ClockDedup(Dedup, TimedOperator):
    """``time: processing``: one clock for every key, the ``now`` of the latest tick."""

    def __init__(self, config: DedupSection) -> None:
        super().__init__(config)
        self._clock_passes = ClockPasses(self._within, self._lateness, self._max_entries)
        self._passes = self._clock_passes

    def tick(self, now: float) -> tuple[Event, ...]:
        if self._clock_passes.tick(now):
            self.clock_jumps += 1
        return ()


class StreamDedup(Dedup):
    """``time: event``: each key's clock is its own newest event time; ticks do not reach it."""

    def __init__(self, config: DedupSection) -> None:
        super().__init__(config)
        self._passes = StreamPasses(self._within, self._lateness, self._max_entries)
