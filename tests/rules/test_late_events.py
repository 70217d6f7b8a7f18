"""Late events and the ticks that act on them: `rules test` (replay) and the live stage alike.

A late event (older than its rule's clock) can change what is due by that
clock: an alarm duration it completes, a stream its old time shows silent, a
throttle interval that already ended. The rule is ticked at its clock right
after such an event, so the outcome never waits for (or, at the end of a
replay, never misses) the clock moving again, and does not depend on how the
events were batched or how often the gateway ticks.

The reference model at the end is the documented behaviour written out
naively: each operator's per-event rule, and a gateway that ticks before and
after every event (as if ticking continuously).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tidegate.cli.rules import rules_app
from tidegate.event import Event, Value, new_event
from tidegate.rules.config import RuleConfig
from tidegate.rules.replay import replay
from tidegate.rules.stage import RouteDefaults, RuleStage

DEFAULTS = RouteDefaults(gateway="gw", prefix="tg/gw", topic="{prefix}/{source}/{name}", qos=1)
T0 = 1_800_000_000.0

Seen = tuple[float, str, str, Value]
"""An output event as compared here: (time relative to T0, source, name, value)."""


def stage_of(*rules: dict[str, Any]) -> RuleStage:
    return RuleStage([RuleConfig.model_validate(r) for r in rules], DEFAULTS, trace=True)


def reading(source: str, value: Value, t: float) -> Event:
    return new_event(source, "temperature", value, time=T0 + t)


def seen(events: Iterable[Event]) -> list[Seen]:
    return [(e.time - T0, e.source, e.name, e.value) for e in events]


def replayed(stage: RuleStage, events: Sequence[Event], *, flush: bool = True) -> list[Event]:
    """What `tidegate rules test` outputs, in order."""
    return [o.event for step in replay(stage, events, flush=flush) for o, _ in step.routed]


def created(out: Iterable[Event]) -> list[Seen]:
    """The events the operators made (alarms, absence reports), not the readings."""
    return [s for s in seen(out) if s[2] != "temperature"]


def on_time_then_late(late: Sequence[tuple[str, Value, float]]) -> list[Event]:
    """Sensor `a` reports 20 every 10 s from 0 to 300 on time; then `late` arrive (older)."""
    events = [reading("a", 20, t) for t in range(0, 301, 10)]
    return events + [reading(source, value, t) for source, value, t in late]


TIMES = ["processing", "event"]


@pytest.mark.parametrize("time", TIMES)
def test_a_late_reading_completes_an_alarm_duration_at_once(time: str) -> None:
    """`b` was hot from 100 on (its readings arrive late, after the clock reached 300)."""
    stage = stage_of({"name": "hot", "time": time, "alarm": {"above": 30, "for": "60s"}})
    out = replayed(stage, on_time_then_late([("b", 35, 100)]))
    # The reading holds until the clock (300): raised at 100 + 60, right after it.
    assert created(out) == [(160, "b", "temperature_alarm", "raised")]
    assert seen(out)[-2:] == [
        (100, "b", "temperature", 35),
        (160, "b", "temperature_alarm", "raised"),
    ]


@pytest.mark.parametrize("time", TIMES)
def test_a_late_reading_completes_a_clear_duration_at_once(time: str) -> None:
    stage = stage_of(
        {
            "name": "hot",
            "time": time,
            "alarm": {"above": 30, "for": "0s", "clear_below": 28, "clear_for": "30s"},
        }
    )
    out = replayed(stage, [reading("b", 35, 0), *on_time_then_late([("b", 20, 200)])])
    assert created(out) == [
        (0, "b", "temperature_alarm", "raised"),
        (230, "b", "temperature_alarm", "cleared"),
    ]


@pytest.mark.parametrize("time", TIMES)
def test_a_stream_first_seen_late_is_stale_at_once(time: str) -> None:
    stage = stage_of({"name": "silent", "time": time, "absence": {"after": "60s"}})
    out = replayed(stage, on_time_then_late([("b", 21, 100)]))
    assert created(out) == [(160, "b", "temperature_absence", "stale")]


@pytest.mark.parametrize("time", TIMES)
def test_a_late_recovery_goes_stale_again_when_the_clock_is_past_its_silence(time: str) -> None:
    """`b` went silent after 0, and its next reading (200) arrives at clock 300: it recovers
    at 200, and by the clock it has been silent again since then."""
    stage = stage_of({"name": "silent", "time": time, "absence": {"after": "60s"}})
    out = replayed(stage, [reading("b", 21, 0), *on_time_then_late([("b", 21, 200)])])
    assert created(out) == [
        (60, "b", "temperature_absence", "stale"),
        (200, "b", "temperature_absence", "recovered"),
        (260, "b", "temperature_absence", "stale"),
    ]


@pytest.mark.parametrize("time", TIMES)
def test_a_late_reading_of_a_stream_still_reporting_is_no_silence(time: str) -> None:
    """`a` reports every second; at 150 a reading it buffered, stamped 50, arrives. Its
    "last seen" stays 150: not stale at 110 and recovered at 151."""
    stage = stage_of({"name": "silent", "time": time, "absence": {"after": "60s"}})
    events = [reading("a", 20, t) for t in range(0, 200)]
    events.insert(151, reading("a", 20, 50))
    assert created(replayed(stage, events, flush=False)) == []


@pytest.mark.parametrize("time", TIMES)
def test_a_late_event_whose_throttle_interval_ended_is_released_at_once(time: str) -> None:
    stage = stage_of(
        {"name": "slow", "time": time, "throttle": {"interval": "10s", "keep": "last"}}
    )
    out = replayed(stage, on_time_then_late([("b", 7, 100)]), flush=False)
    # Its interval [100, 110) ended before the clock (300): released with it, not at a flush.
    assert seen(out)[-1] == (100, "b", "temperature", 7)


def test_the_real_command_raises_the_alarm_a_late_upload_completes(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- name: hot\n  alarm: {above: 30, for: 60s}\n  publish: {topic: 'alarms/{source}'}\n"
    )
    stamps = [("a", 20, t) for t in range(0, 301, 10)] + [("b", 35, 100), ("b", 36, 110)]
    lines = "\n".join(
        f'{{"source": "{s}", "name": "t", "value": {v}, "time": {T0 + t}}}' for s, v, t in stamps
    )
    result = CliRunner().invoke(rules_app, ["test", str(rules), "-"], input=lines)
    assert result.exit_code == 0, result.stderr
    assert '"value":"raised"' in result.stdout
    assert result.stdout.count('"value":"raised"') == 1


# -- the live stage gives what `rules test` gives -----------------------------------------


READINGS = {"name": "temperature"}  # created events do not enter the later rules
RULES: list[dict[str, Any]] = [
    {
        "name": "hot",
        "match": READINGS,
        "alarm": {"above": 30, "for": "20s", "clear_below": 25, "clear_for": "5s"},
    },
    {"name": "silent", "match": READINGS, "absence": {"after": "15s"}},
    {
        "name": "slow",
        "match": {**READINGS, "source": "a"},
        "throttle": {"interval": "7s", "keep": "last"},
    },
    {"name": "once", "match": READINGS, "dedup": {"within": "9s"}},
]


@st.composite
def late_streams(draw: st.DrawFn) -> list[tuple[Event, bool]]:
    """Readings of two sensors, some late (older than the newest so far), each with
    whether a new driver batch starts at it."""
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(-40, 12),  # time relative to the newest so far
                st.sampled_from(["a", "b"]),
                st.sampled_from([20, 24, 26, 31, 40]),
                st.booleans(),
            ),
            max_size=40,
        )
    )
    newest = 0
    stream: list[tuple[Event, bool]] = []
    for delta, source, value, new_batch in steps:
        t = newest + delta
        newest = max(newest, t)
        stream.append((reading(source, value, t), new_batch))
    return stream


def live(stage: RuleStage, stream: Sequence[tuple[Event, bool]], cadence: float) -> list[Event]:
    """Drive the stage as gateway/pipeline.py does, on an injected clock.

    A reading arrives when the clock reaches the newest time seen (a late one at
    once); the pipeline ticks every ``cadence`` s of that clock, and between driver
    batches at the clock it has then (its tick timer fires between two batches).
    The readings' times are whole seconds, so with a cadence that divides a second
    a tick falls at each arrival, as in `rules test` (live, a `time: processing`
    rule's clock is the latest tick's: up to one tick interval behind).
    """
    out: list[Event] = []
    wall = -math.inf
    next_tick = -math.inf
    batch: list[Event] = []

    def process() -> None:
        if batch:
            out.extend(o.event for o in stage.process(batch))
            batch.clear()
            out.extend(o.event for o in stage.tick(wall))

    for event, new_batch in stream:
        if event.time > wall:
            process()
            if next_tick == -math.inf:
                next_tick = event.time
            while next_tick <= event.time:
                out.extend(o.event for o in stage.tick(next_tick))
                next_tick += cadence
            wall = event.time
        elif new_batch:
            process()
        batch.append(event)
    process()
    out.extend(o.event for o in stage.flush())
    return out


@pytest.mark.parametrize("time", TIMES)
@settings(max_examples=150, deadline=None)
@given(stream=late_streams(), cadence=st.sampled_from([0.25, 0.5, 1.0]))
def test_the_live_stage_gives_what_rules_test_gives(
    time: str, stream: list[tuple[Event, bool]], cadence: float
) -> None:
    rules = [{**r, "time": time} for r in RULES]
    events = [e for e, _ in stream]
    expected = replayed(stage_of(*rules), events)
    got = live(stage_of(*rules), stream, cadence)
    # Ticks in between may emit a due event earlier in the output, never another one.
    assert sorted(seen(got), key=repr) == sorted(seen(expected), key=repr)


def test_the_live_stage_acts_on_a_late_batch_before_the_clock_moves() -> None:
    """A driver batch of late readings: the alarm is raised with the batch, not at the
    next tick of the gateway clock (which, for a `time: event` rule, may be hours away)."""
    for time in TIMES:
        stage = stage_of({"name": "hot", "time": time, "alarm": {"above": 30, "for": "60s"}})
        stage.process([reading("a", 20, 300)])
        assert stage.tick(T0 + 300) == []
        out = [o.event for o in stage.process([reading("b", 35, 100), reading("b", 36, 120)])]
        assert created(out) == [(160, "b", "temperature_alarm", "raised")]


def test_readings_count_in_arrival_order_and_a_later_arrival_cannot_undo_a_raise() -> None:
    """The documented rule, pinned: a late reading holds until the next reading *arrives*;
    the alarm it completes by the clock is raised at once, whatever older reading comes
    after it (in any batching: the live stage and `rules test` agree)."""
    late = [("b", 35, 100), ("b", 20, 150)]
    stage = stage_of({"name": "hot", "alarm": {"above": 30, "for": "60s", "clear_below": 10}})
    assert created(replayed(stage, on_time_then_late(late))) == [
        (160, "b", "temperature_alarm", "raised")
    ]


# -- a reference: the documented per-event rules, ticked before and after every event ------


@dataclass
class AlarmRef:
    """`above`/`for`/`clear_below`/`clear_for`, per key, as rules/alarm.py documents it."""

    above: float
    clear_below: float
    for_: float
    clear_for: float
    raised: dict[str, bool] = field(default_factory=dict)
    since: dict[str, float | None] = field(default_factory=dict)
    value: dict[str, float] = field(default_factory=dict)
    out: list[Seen] = field(default_factory=list)

    def complete(self, key: str, now: float) -> None:
        since = self.since.get(key)
        needed = self.clear_for if self.raised.get(key) else self.for_
        if since is not None and now - since >= needed:
            self.raised[key] = not self.raised.get(key)
            self.since[key] = None
            state = "raised" if self.raised[key] else "cleared"
            self.out.append((since + needed, key, "temperature_alarm", state))

    def event(self, key: str, value: float, t: float) -> None:
        if key in self.value:
            self.complete(key, t)  # the previous reading held until now
        self.value[key] = value
        holds = value < self.clear_below if self.raised.get(key) else value > self.above
        since = self.since.get(key)
        if not holds:
            self.since[key] = None
        elif since is None or t < since:  # a new condition, or one from before it began
            self.since[key] = t
        self.complete(key, t)

    def tick(self, now: float) -> None:
        for key in sorted(self.value):
            self.complete(key, now)


@dataclass
class AbsenceRef:
    """`after`, per key, as rules/absence.py documents it (keys learned from events)."""

    after: float
    last: dict[str, float] = field(default_factory=dict)
    stale: dict[str, bool] = field(default_factory=dict)
    out: list[Seen] = field(default_factory=list)

    def check(self, key: str, now: float) -> None:
        if not self.stale[key] and now - self.last[key] > self.after:
            self.stale[key] = True
            self.out.append((self.last[key] + self.after, key, "temperature_absence", "stale"))

    def event(self, key: str, t: float) -> None:
        if key in self.last:
            if t <= self.last[key]:
                return  # last seen is the latest time: an older event changes nothing
            self.check(key, t)
            if self.stale[key]:
                self.out.append((t, key, "temperature_absence", "recovered"))
        self.last[key], self.stale[key] = t, False

    def tick(self, now: float) -> None:
        for key in self.last:
            self.check(key, now)


def reference(events: Sequence[tuple[str, float, float]]) -> list[Seen]:
    """Alarm (above 30 for 20 s, clear below 25 for 5 s) and absence (15 s) over
    (source, value, time) in arrival order, with a tick before and after every event."""
    alarm = AlarmRef(above=30, clear_below=25, for_=20, clear_for=5)
    absence = AbsenceRef(after=15)
    clock = -math.inf
    for source, value, t in events:
        clock = max(clock, t)
        for op in (alarm, absence):
            op.tick(clock)
        alarm.event(source, value, t)
        absence.event(source, t)
        for op in (alarm, absence):
            op.tick(clock)
    return alarm.out + absence.out


@pytest.mark.parametrize("time", TIMES)
@settings(max_examples=150, deadline=None)
@given(stream=late_streams())
def test_alarm_and_absence_match_the_reference_with_late_events(
    time: str, stream: list[tuple[Event, bool]]
) -> None:
    events = [e for e, _ in stream]
    stage = stage_of({**RULES[0], "time": time}, {**RULES[1], "time": time})
    readings: list[tuple[str, float, float]] = []
    for e in events:
        assert isinstance(e.value, int)  # the strategy makes whole numbers
        readings.append((e.source, e.value, e.time - T0))
    expected = reference(readings)
    assert sorted(created(replayed(stage, events)), key=repr) == sorted(expected, key=repr)
