"""The window operator's documented behaviour, case by case."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from tests.rules.window_support import T0, reading, window
from tidegate.event import Event, Value
from tidegate.rules.clock import CLOCK_STEP_BACK
from tidegate.rules.operator import TimedOperator
from tidegate.rules.operators.registry import OPERATORS
from tidegate.rules.operators.window.aligned import MAX_EMPTY_RUN, AlignedWindows
from tidegate.rules.operators.window.count import CountWindows
from tidegate.rules.operators.window.operator import WindowOperator
from tidegate.rules.operators.window.session import SessionWindows
from tidegate.rules.operators.window.sliding import SlidingWindow
from tidegate.timefmt import rfc3339


def values_of(events: Sequence[Event]) -> list[Value]:
    return [e.value for e in events]


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"kind": "tumbling", "size": "1m"}, AlignedWindows),
        ({"kind": "hopping", "size": "1m", "hop": "10s"}, AlignedWindows),
        ({"kind": "sliding", "size": "1m"}, SlidingWindow),
        ({"kind": "session", "gap": "1m"}, SessionWindows),
        ({"kind": "count", "count": 10}, CountWindows),
    ],
)
def test_each_kind_is_the_window_rule_operator(config: dict[str, Any], kind: type) -> None:
    op: TimedOperator = window(**config)
    assert type(op) is kind
    assert OPERATORS["window"] is WindowOperator and isinstance(op, WindowOperator)


def test_tick_closes_a_window_without_any_event_arriving() -> None:
    op = window(kind="tumbling", size="1m", aggregate=["count", "avg"])
    assert not op.tick(T0 + 5)  # T0 + 5 is 22:13:25 UTC; its minute ends at T0 + 40
    assert not op.apply(reading(20.0, 0.0))
    assert not op.apply(reading(22.0, 0.0))
    assert not op.tick(T0 + 39.999)
    (closed,) = op.tick(T0 + 41)
    assert closed.value == {"count": 2, "avg": 21.0}
    assert closed.time == T0 + 40
    assert closed.tags == {
        "window_start": rfc3339(T0 - 20),
        "window_end": rfc3339(T0 + 40),
    }
    assert not op.tick(T0 + 500)  # an empty window emits nothing by default


def test_processing_time_follows_the_clock_not_the_event_stamps() -> None:
    op = window(kind="tumbling", size=10, aggregate="count")
    op.tick(T0)
    # Stamped in 1970 and in the future: the window is the clock's.
    op.apply(reading(1.0, 5.0))
    op.apply(reading(1.0, T0 + 3600))
    op.tick(T0 + 9)
    op.apply(reading(1.0, T0 + 9))
    (closed,) = op.tick(T0 + 10)
    assert closed.value == 3 and closed.time == T0 + 10


def test_event_time_follows_the_stamps_and_tick_moves_the_watermark() -> None:
    op = window(kind="tumbling", size=10, time="event", aggregate="count")
    assert not op.apply(reading(1.0, T0 + 1))
    assert op.apply(reading(1.0, T0 + 12)) != ()  # the watermark passed T0 + 10
    assert op.watermark == T0 + 12
    (second,) = op.tick(T0 + 20)  # the clock moves the watermark too
    assert second.value == 1 and second.time == T0 + 20
    assert not op.tick(T0 + 15) and op.watermark == T0 + 20  # never backwards


def test_late_events_are_dropped_and_counted() -> None:
    op = window(kind="tumbling", size=10, time="event", aggregate="count")
    op.apply(reading(1.0, T0 + 1))
    (closed,) = op.apply(reading(1.0, T0 + 10))  # exactly the end: the window closes
    assert closed.value == 1
    assert not op.apply(reading(1.0, T0 + 9.999))
    assert op.late_events == 1
    (later,) = op.tick(T0 + 20)
    assert later.value == 1  # the late one was not counted in the next window


def test_allowed_lateness_keeps_a_window_open_for_late_events() -> None:
    op = window(kind="tumbling", size=10, time="event", allowed_lateness="5s", aggregate="count")
    op.apply(reading(1.0, T0 + 1))
    assert not op.apply(reading(1.0, T0 + 14.9))
    assert not op.apply(reading(1.0, T0 + 9))  # late by 5.9 s, within the 5 s + window
    (closed,) = op.apply(reading(1.0, T0 + 15))
    assert closed.value == 2 and closed.time == T0 + 10
    assert not op.apply(reading(1.0, T0 + 9.5))
    assert op.late_events == 1


def test_an_out_of_order_event_reaches_a_window_before_the_keys_first() -> None:
    op = window(
        kind="hopping", size=10, hop=5, time="event", allowed_lateness=10, aggregate="count"
    )
    op.apply(reading(1.0, T0 + 17))  # windows [T0+10, T0+20) and [T0+15, T0+25)
    op.apply(reading(1.0, T0 + 12))  # also in [T0+5, T0+15), still open for lateness
    emitted = op.tick(T0 + 100)
    assert [(e.tags and e.tags["window_start"], e.value) for e in emitted] == [
        (rfc3339(T0 + 5), 1),
        (rfc3339(T0 + 10), 2),
        (rfc3339(T0 + 15), 1),
    ]


def test_hopping_windows_overlap() -> None:
    op = window(kind="hopping", size=15, hop=5, time="event", aggregate="sum")
    emitted = [*op.apply(reading(1.0, T0 + 1)), *op.apply(reading(2.0, T0 + 6))]
    assert len(emitted) == 1  # the watermark at T0 + 6 closed [T0 - 10, T0 + 5)
    emitted += op.apply(reading(4.0, T0 + 16))
    assert len(emitted) == 3
    emitted += op.tick(T0 + 100)
    # Each value counts in size/hop = 3 windows.
    assert [(e.time - T0, e.value) for e in emitted] == [
        (5.0, 1.0),
        (10.0, 3.0),
        (15.0, 3.0),
        (20.0, 6.0),
        (25.0, 4.0),
        (30.0, 4.0),
    ]


def test_a_session_closes_after_the_gap_and_spans_first_to_last_value() -> None:
    op = window(kind="session", gap=30, aggregate=["count", "first", "last"])
    op.tick(T0)
    op.apply(reading(1.0, 0))
    op.tick(T0 + 29.9)
    op.apply(reading(2.0, 0))  # 29.9 s later: the same session
    assert not op.tick(T0 + 59.8)
    (session,) = op.tick(T0 + 59.9)  # 30 s of silence
    assert session.value == {"count": 2, "first": 1.0, "last": 2.0}
    assert session.time == T0 + 29.9
    assert session.tags == {"window_start": rfc3339(T0), "window_end": rfc3339(T0 + 29.9)}


def test_a_value_exactly_one_gap_after_the_last_starts_a_new_session() -> None:
    op = window(kind="session", gap=30, time="event", allowed_lateness=60, aggregate="count")
    op.apply(reading(1.0, T0))
    op.apply(reading(1.0, T0 + 30))
    op.apply(reading(1.0, T0 + 15))  # out of order: joins and bridges the two
    op.apply(reading(1.0, T0 + 100))
    assert values_of(op.tick(T0 + 1000)) == [3, 1]


def test_a_late_event_that_joins_an_open_session_is_kept() -> None:
    op = window(kind="session", gap=10, time="event", aggregate="count")
    op.apply(reading(1.0, T0 + 20))
    op.apply(reading(1.0, T0 + 28))
    assert not op.apply(reading(1.0, T0 + 12))  # alone it would be closed; it joins
    assert not op.apply(reading(1.0, T0 + 1))  # joins nothing and is closed: late
    assert not op.apply(reading(1.0, T0 + 18, source="b"))  # would close at T0 + 28: late
    assert op.late_events == 2
    assert values_of(op.tick(T0 + 100)) == [3]


def test_count_windows_close_on_the_nth_value_per_key() -> None:
    op = window(kind="count", count=3, aggregate="sum")
    out = [e for i in range(8) for e in op.apply(reading(float(i), T0 + i, source="ab"[i % 2]))]
    assert [(e.source, e.value) for e in out] == [("a", 6.0), ("b", 9.0)]  # 0+2+4, 1+3+5
    assert not op.tick(T0 + 1e6)  # time never closes a count window
    flushed = op.flush()
    assert [(e.source, e.value) for e in flushed] == [("a", 6.0), ("b", 7.0)]
    assert all(e.tags and e.tags["partial"] == "true" for e in flushed)


def test_keys_are_kept_apart_and_by_can_merge_sources() -> None:
    per_source = window(kind="tumbling", size=10, time="event", aggregate="count")
    per_name = window(kind="tumbling", size=10, time="event", aggregate="count", by=["name"])
    for op in (per_source, per_name):
        for i, source in enumerate(["gh1", "gh2", "gh1"]):
            op.apply(reading(1.0, T0 + i, source=source))
    assert sorted((e.source, e.value) for e in per_source.tick(T0 + 10)) == [
        ("gh1", 2),
        ("gh2", 1),
    ]
    # One window for all sources; it carries the latest event's source.
    assert [(e.source, e.value) for e in per_name.tick(T0 + 10)] == [("gh1", 3)]


def test_output_shape_one_aggregate_a_number_several_a_mapping() -> None:
    tags = {"room": "north"}
    single = window(kind="tumbling", size=10, time="event", aggregate="max")
    several = window(kind="tumbling", size=10, time="event", aggregate=["max", "p50"])
    for op in (single, several):
        op.apply(reading(1, T0, tags=tags))
        op.apply(reading(3.5, T0 + 1, tags=tags))
    (one,) = single.tick(T0 + 10)
    (two,) = several.tick(T0 + 10)
    assert one.value == 3.5 and two.value == {"max": 3.5, "p50": 2.25}
    for event in (one, two):
        assert (event.source, event.name, event.unit, event.seq) == ("a", "temperature", "C", 0)
        assert event.tags == {
            "room": "north",
            "window_start": rfc3339(T0),
            "window_end": rfc3339(T0 + 10),
        }
    assert one.id != two.id


def test_an_undefined_single_aggregate_emits_nothing_and_is_counted() -> None:
    op = window(kind="tumbling", size=10, time="event", aggregate="stddev")
    op.apply(reading(1.0, T0))
    assert op.tick(T0 + 10) == []
    assert op.undefined_windows == 1
    several = window(kind="tumbling", size=10, time="event", aggregate=["stddev", "count"])
    several.apply(reading(1.0, T0))
    assert values_of(several.tick(T0 + 10)) == [{"count": 1}]


def test_only_numbers_are_aggregated_and_the_rest_is_counted() -> None:
    op = window(kind="tumbling", size=10, time="event", aggregate=["count", "avg"])
    mixed: list[Value] = [True, False, True, 4, "on", {"x": 1.0}, math.nan, -math.inf]
    for value in mixed:
        op.apply(reading(value, T0))
    for bad_time in (math.nan, math.inf):
        op.apply(Event("a", "temperature", 1.0, bad_time))
    assert values_of(op.tick(T0 + 10)) == [{"count": 4, "avg": 1.5}]
    assert op.skipped_non_numeric == 6


def test_emit_empty_reports_silent_windows_as_count_zero() -> None:
    op = window(kind="tumbling", size=10, emit_empty=True, aggregate=["count", "sum", "avg"])
    op.tick(T0)
    op.apply(reading(5.0, 0))
    emitted = op.tick(T0 + 30)
    assert values_of(emitted) == [
        {"count": 1, "sum": 5.0, "avg": 5.0},
        {"count": 0, "sum": 0.0},
        {"count": 0, "sum": 0.0},
    ]
    assert [e.time - T0 for e in emitted] == [10.0, 20.0, 30.0]


def test_emit_empty_after_a_clock_jump_emits_only_the_latest_windows() -> None:
    op = window(kind="tumbling", size=1, emit_empty=True, aggregate="count")
    op.tick(T0)
    op.apply(reading(5.0, 0))
    emitted = op.tick(T0 + 1 + MAX_EMPTY_RUN + 250)
    assert len(emitted) == 1 + MAX_EMPTY_RUN
    assert op.skipped_empty_windows == 250
    assert emitted[1].time == T0 + 252 and emitted[-1].time == T0 + 1 + MAX_EMPTY_RUN + 250


def test_flush_emits_open_windows_now_tagged_partial() -> None:
    op = window(kind="tumbling", size=60, aggregate=["count"])
    op.tick(T0)
    op.apply(reading(1.0, 0))
    op.tick(T0 + 10)
    op.apply(reading(1.0, 0))
    assert op.open_windows == 1
    (partial,) = op.flush()
    assert partial.value == 2
    assert partial.time == T0 + 10  # cut now, before its end at T0 + 40
    assert partial.tags is not None and partial.tags["partial"] == "true"
    assert partial.tags["window_end"] == rfc3339(T0 + 40)
    assert op.open_windows == 0 and op.flush() == []


def test_sliding_emits_on_every_event_and_never_on_tick_or_flush() -> None:
    op = window(kind="sliding", size=10, time="event", aggregate=["count", "sum"])
    out = [op.apply(reading(float(i), T0 + 4 * i)) for i in range(5)]  # T0, +4, +8, +12, +16
    assert [values_of(e) for e in out] == [
        [{"count": 1, "sum": 0.0}],
        [{"count": 2, "sum": 1.0}],
        [{"count": 3, "sum": 3.0}],
        [{"count": 3, "sum": 6.0}],  # (T0+2, T0+12]: T0 is out
        [{"count": 3, "sum": 9.0}],
    ]
    assert out[3][0].tags == {"window_start": rfc3339(T0 + 2), "window_end": rfc3339(T0 + 12)}
    assert op.open_windows == 1
    assert not op.tick(T0 + 1000) and op.open_windows == 0  # aged out, forgotten
    assert not op.flush()


def test_a_key_holds_at_most_max_values_per_key() -> None:
    op = window(kind="tumbling", size=10, time="event", aggregate="count", max_values_per_key=3)
    for i in range(5):
        op.apply(reading(1.0, T0 + i))
    op.apply(reading(1.0, T0 + 1, source="other"))
    assert op.overflow_events == 2
    assert sorted(e.value for e in op.tick(T0 + 10) if isinstance(e.value, int)) == [1, 3]


def test_a_clock_set_back_emits_the_open_windows_and_starts_again() -> None:
    op = window(kind="tumbling", size=60, aggregate="count")
    op.tick(T0)
    op.apply(reading(1.0, 0))
    assert not op.tick(T0 - CLOCK_STEP_BACK / 2)  # a small step back is ignored
    op.apply(reading(1.0, 0))
    (cut,) = op.tick(T0 - 3600)
    assert cut.value == 2 and cut.tags and cut.tags["partial"] == "true"
    assert op.clock_jumps == 1 and op.watermark == T0 - 3600
    op.apply(reading(1.0, 0))
    (after,) = op.tick(T0 - 3600 + 60)
    assert after.value == 1 and after.time == T0 - 3600 + 40


def test_a_clock_set_back_leaves_count_windows_alone() -> None:
    op = window(kind="count", count=2, aggregate="count")
    op.tick(T0)
    op.apply(reading(1.0, 0))
    assert not op.tick(T0 - 3600)
    assert op.clock_jumps == 1
    assert values_of(op.apply(reading(1.0, 0))) == [2]


def test_open_windows_counts_overlapping_windows_and_sessions() -> None:
    hopping = window(kind="hopping", size=30, hop=10, time="event")
    hopping.apply(reading(1.0, T0 + 1))
    assert hopping.open_windows == 3
    sessions = window(kind="session", gap=5, time="event", allowed_lateness=100, by=["source"])
    for t in (0, 10, 20):
        sessions.apply(reading(1.0, T0 + t))
    sessions.apply(reading(1.0, T0, source="b"))
    assert sessions.open_windows == 4
    assert sessions.counters()["open_windows"] == 4
    assert set(sessions.counters()) == {
        "late_events",
        "skipped_non_numeric",
        "overflow_events",
        "undefined_windows",
        "skipped_empty_windows",
        "clock_jumps",
        "open_windows",
    }
