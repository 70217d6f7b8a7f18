"""Rows the send window took but could not pack yet (many topics, a full window) are
taken again at the next refill, so they follow everything the outbox did meanwhile:
a clock correction, a bound's drop, a higher class committed since. (A review
found each of these broken while the window kept such rows itself.)

The window is driven as ``Publisher._pump`` drives it (room -> rows_to_take ->
take -> pack); acknowledgements are simulated by emptying ``inflight``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.outbox.stored import stored_events, unpack_segments
from tidegate.config.schema import MqttSection
from tidegate.event import new_event
from tidegate.outbox.limits import OutboxLimits
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing
from tidegate.priority import HIGH
from tidegate.uplink.batches import Message
from tidegate.uplink.window import SendWindow

MAX = 256 * 1024


def item(topic: str, value: float, priority: int = 1) -> Outgoing:
    return Outgoing(new_event("s", "x", value), topic, 1, False, priority)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path / "o.db", "gw")
    outbox.open()
    yield outbox
    outbox.close()


def refill(window: SendWindow, box: Outbox) -> list[Message]:
    """One pass of ``Publisher._pump``: take what the room allows and pack it."""
    room = window.room()
    assert room
    want = window.rows_to_take(room)
    rows = box.take(want, window.cursors) if want else []
    messages, too_big = window.pack(rows, room, MAX)
    assert not too_big
    for n, msg in enumerate(messages):
        window.inflight[len(window.inflight) + n + 1000] = msg
    return messages


def acked_all(window: SendWindow) -> None:
    window.inflight.clear()


def stored(box: Outbox) -> dict[int, bytes]:
    return {i: p for i, _, p in stored_events(box.db)}


def spread_over_topics(box: Outbox, n: int, topics: int) -> None:
    """``n`` events, one topic after another (the default topic is per source/name)."""
    box.put([item(f"t/{i % topics}", i) for i in range(n)])


def packed(messages: list[Message]) -> set[int]:
    return {i for m in messages for i in m.ids}


def test_rows_left_over_are_published_corrected_after_a_clock_step(box: Outbox) -> None:
    window = SendWindow(MqttSection(host="b", events_per_message=10, max_inflight=2))
    spread_over_topics(box, 6, topics=6)  # six topics: two messages now, four rows left
    first = refill(window, box)
    assert len(first) == 2 and len(set(stored(box)) - packed(first)) == 4
    assert box.correct_clock(30.0) == 6  # every undelivered event of this boot is fixed
    acked_all(window)
    later = refill(window, box)
    sent = {i: p for m in later for i, p in zip(m.ids, m.payloads, strict=True)}
    assert sent, "the rows left over are published on the next refill"
    file = stored(box)
    assert all(json.loads(file[i]).get("time_corrected") for i in sent)
    assert sent == {i: file[i] for i in sent}


def test_rows_left_over_and_dropped_by_the_bound_are_not_published(tmp_path: Path) -> None:
    # A backlog against a small bound: exactly when rows are left over.
    box = Outbox(tmp_path / "o.db", "gw", limits=OutboxLimits(max_bytes=1500))
    box.open()
    try:
        window = SendWindow(MqttSection(host="b", events_per_message=10, max_inflight=2))
        spread_over_topics(box, 6, topics=6)
        left = set(stored(box)) - packed(refill(window, box))
        assert left
        # More events come in; the bound drops the oldest undelivered ones (counted as
        # dropped_full), among them rows the window left over.
        box.put([item("t/new", 100 + v) for v in range(6)])
        dropped = left - set(stored(box))
        assert dropped, "the bound dropped some of the rows left over"
        acked_all(window)
        assert not packed(refill(window, box)) & dropped
    finally:
        box.close()


def test_a_high_event_goes_before_normal_rows_left_over(box: Outbox) -> None:
    """Higher classes are published first (docs/delivery.md, Priorities)."""
    window = SendWindow(MqttSection(host="b", events_per_message=10, max_inflight=4))
    spread_over_topics(box, 40, topics=20)  # a normal backlog over 20 topics
    assert len(set(stored(box)) - packed(refill(window, box))) >= 20
    box.put([item("t/alarm", 999, HIGH)])
    (high,) = [i for i, cls, _ in stored_events(box.db) if cls == HIGH]
    # Two PUBACKs: half the window is free, the publisher refills.
    for mid in list(window.inflight)[:2]:
        window.inflight.pop(mid)
    messages = refill(window, box)
    assert messages and messages[0].ids == [high]


def test_rows_left_over_come_back_from_memory_once_each(box: Outbox) -> None:
    window = SendWindow(MqttSection(host="b", events_per_message=10, max_inflight=4))
    spread_over_topics(box, 40, topics=20)
    sent: list[int] = []
    while stored(box).keys() - set(sent):
        messages = refill(window, box)
        sent += packed(messages)
        acked_all(window)
    assert sorted(sent) == sorted(stored(box)) and len(sent) == len(set(sent))
    # Nothing was read back from the file: these rows were committed by this run.
    unpack_segments(box.db).execute("UPDATE outbox_normal SET crc = crc + 1")
    box.put([item("t/0", 1000)])
    assert [json.loads(p)["value"] for m in refill(window, box) for p in m.payloads] == [1000]
