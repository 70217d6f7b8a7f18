"""Replaying recorded events through a rule stage, with the events' own time as the clock.

This is what makes ``tidegate rules test`` deterministic: nothing reads the
wall clock. Before each event, the clock moves to the event's time (it never
moves back: an event older than one before it leaves the clock where it is and
is handled by its own time, as a late event would be live), and ``tick`` runs
at that time, so windows close, alarm durations complete and silences are
reported exactly where they would have with a gateway ticking continuously.
After a late event (older than the clock), its rule ticks itself at the clock
(``CompiledRule.run``; see "Late events" in ``tidegate.rules.config``), as it
does in the running gateway: what the late event made due is output right
after it, not when the clock next moves (or never, at the end of the
replay). At the end, the stage is flushed as at a shutdown (partial windows,
held events), unless ``flush=False``.

The one place a replay cannot be the live gateway: the replayed times *are* the
clock, so an event stamped far ahead (a device clock a day fast) moves a
``time: processing`` rule's clock there, as if the gateway clock had jumped;
live, the gateway clock does not follow a stamp. After such an event the replay
judges the rest of the recording against it (``dedup``: too late; ``absence``:
silent). ``time: event`` rules do not have this difference for ``dedup``, whose
clock there is each stream's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from tidegate.event import Event
from tidegate.outgoing import Outgoing
from tidegate.rules.compiler import Route, RuleDeadLetter
from tidegate.rules.stage import RuleStage


class Replayed(NamedTuple):
    """What one step of the replay produced, in order."""

    routed: list[tuple[Outgoing, Route]]
    dead_letters: list[RuleDeadLetter]


def _step(stage: RuleStage, outgoing: list[Outgoing]) -> Replayed:
    routes = stage.take_trace()
    return Replayed(list(zip(outgoing, routes, strict=True)), stage.take_dead_letters())


def replay(stage: RuleStage, events: Iterable[Event], *, flush: bool = True) -> Iterator[Replayed]:
    """Run ``events`` through ``stage`` (made with ``trace=True``); yield what each step made."""
    clock = -math.inf
    for event in events:
        if event.time > clock:
            clock = event.time
            ticked = stage.tick(clock)
            if ticked:
                yield _step(stage, ticked)
        yield _step(stage, stage.process([event]))
    if flush:
        yield _step(stage, stage.flush())
