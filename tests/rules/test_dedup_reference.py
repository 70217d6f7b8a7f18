"""Dedup against a reference that keeps every pass forever, over random streams.

The definition (``test_dedup``): an event is dropped when ``passed <= time <
passed + within`` for an earlier pass of its key and value, if it is at most
``allowed_lateness`` behind its clock (the ticks for ``time: processing``, its
own stream's newest time for ``time: event``). The operator must agree with the
reference and remember no pass longer than the bound needs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.rules.test_dedup import make_for, reading, tick
from tidegate.rules.operator import RuleTime


@dataclass
class Reference:
    """The documented definition, naively: every pass kept forever. An event's clock is
    the newest tick (`time: processing`) or the newest time of its own stream (`time:
    event`); it is compared when at most `lateness` behind it."""

    within: float
    lateness: float
    event_time: bool
    passes: dict[tuple[str, int], list[float]] = field(default_factory=lambda: defaultdict(list))
    ticks: float = -math.inf
    streams: dict[str, float] = field(default_factory=dict)
    too_late: int = 0

    def clock(self, source: str) -> float:
        return self.streams.get(source, -math.inf) if self.event_time else self.ticks

    def tick(self, now: float) -> None:
        self.ticks = max(self.ticks, now)

    def compared(self, source: str, t: float) -> bool:
        """Take an event's time into its clock; whether the event is compared."""
        self.streams[source] = max(self.streams.get(source, -math.inf), t)
        return t >= self.clock(source) - self.lateness

    def event(self, key: tuple[str, int], t: float) -> bool:
        """Whether the event passes."""
        passes = self.passes[key]
        if not self.compared(key[0], t):
            self.too_late += 1
        elif any(p <= t < p + self.within for p in passes):
            return False
        passes.append(t)
        return True

    def needed(self) -> int:
        """Passes an event within the lateness bound could still fall in the window of."""
        margin = self.within + self.lateness
        return sum(
            1
            for (source, _), times in self.passes.items()
            for p in times
            if p >= self.clock(source) - margin
        )


Op = tuple[str, str, int, float]
"""("event", source, value, offset) or ("tick", "", 0, offset): offsets from `now`."""

FUTURE = 10.0
"""Offsets from here on are wrong stamps (a device clock a minute or more ahead): they
do not move `now`, the gateway clock of the simulation."""

_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("event"),
            st.sampled_from(["a", "b"]),
            st.integers(0, 2),
            st.sampled_from(
                [-30, -20, -12, -9, -5, -3, -1, -0.5, 0, 0.5, 1, 2, 4, 9, 60, 500, 86_400]
            ),
        ),
        st.tuples(st.just("tick"), st.just(""), st.just(0), st.sampled_from([-0.5, 0, 1, 7])),
    ),
    max_size=60,
)


def timed(ops: list[Op]) -> list[tuple[str, str, int, float]]:
    """The ops with absolute times: ticks and on-time stamps move `now`, future ones not."""
    now = 0.0
    out = []
    for kind, source, value, offset in ops:
        t = now + offset
        if offset < FUTURE:
            now = max(now, t)
        out.append((kind, source, value, t))
    return out


@pytest.mark.parametrize("time", ["processing", "event"])
@settings(max_examples=300, deadline=None)
@given(
    ops=_ops,
    within=st.sampled_from([1, 3, 9]),
    lateness=st.sampled_from([None, 0, 2, 10]),
)
def test_matches_the_reference_over_late_out_of_order_and_future_streams(
    time: RuleTime, ops: list[Op], within: int, lateness: int | None
) -> None:
    event_time = time == "event"
    op = make_for(time, within=within, allowed_lateness=lateness)
    ref = Reference(within, within if lateness is None else lateness, event_time)
    for kind, source, value, t in timed(ops):
        if kind == "tick":
            tick(op, t)
            ref.tick(t)
        else:
            out = op.apply(reading(value, t, source=source))
            assert len(out) == (1 if ref.event((source, value), t) else 0)
        # Exactly the passes the bound needs: none forgotten early, none kept longer.
        assert op.entries == ref.needed()
    assert op.too_late == ref.too_late


@pytest.mark.parametrize("time", ["processing", "event"])
@settings(max_examples=200, deadline=None)
@given(ops=_ops, max_entries=st.integers(1, 4))
def test_a_bounded_memory_only_ever_lets_more_through(
    time: RuleTime, ops: list[Op], max_entries: int
) -> None:
    """Every dropped event is a repeat of a published one inside its window; a repeat the
    operator lets through inside the lateness bound is explained by an eviction. (With
    `time: event`, a stream whose every pass was evicted starts afresh, its clock too: a
    repeat of it may then be dropped that its old clock would have called too late.)"""
    event_time = time == "event"
    op = make_for(time, within=9, max_entries=max_entries)
    clocks = Reference(9, 9, event_time)
    published: dict[tuple[str, int], list[float]] = defaultdict(list)
    for kind, source, value, t in timed(ops):
        if kind == "tick":
            tick(op, t)
            clocks.tick(t)
            continue
        key = (source, value)
        compared = clocks.compared(source, t)
        in_a_window = any(p <= t < p + 9 for p in published[key])
        if op.apply(reading(value, t, source=source)):
            published[key].append(t)
            assert not (compared and in_a_window) or op.evicted > 0
        else:
            assert in_a_window and (compared or (event_time and op.evicted > 0))
        assert op.entries <= max_entries
