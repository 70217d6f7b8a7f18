"""Packing rows into messages (``group_messages``), its fast path (a key at a time)
against a plain reference: the same rows consumed, the same messages per key in the
same order, the same rows too large for any message."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from tidegate.outbox import Row
from tidegate.uplink.batches import Message, group_messages


def reference(
    rows: list[Row], per_message: int, room: int, max_bytes: int
) -> tuple[list[Message], int, list[int]]:
    """The rule, one row at a time: rows are consumed as a prefix; a message holds
    rows of one topic, QoS, retain and class, at most ``per_message`` of them and
    ``2 + sum(size + 1)`` bytes at most ``max_bytes``."""
    messages: list[Message] = []
    open_by_key: dict[tuple[str, int, bool, int], tuple[Message, int]] = {}
    too_big: list[int] = []
    consumed = 0
    for row in rows:
        size = len(row.payload)
        if size + 2 > max_bytes:
            too_big.append(row.id)
        elif per_message == 1:
            if len(messages) >= room:
                break
            messages.append(Message(row.topic, row.qos, row.retain, [row.id], [row.payload]))
        else:
            key = (row.topic, row.qos, row.retain, row.priority)
            msg, used = open_by_key.get(key, (None, 0))
            if msg is None or len(msg.ids) >= per_message or used + size + 1 > max_bytes:
                if len(messages) >= room:
                    break
                msg, used = Message(row.topic, row.qos, row.retain, [], []), 2
                messages.append(msg)
            msg.ids.append(row.id)
            msg.payloads.append(row.payload)
            open_by_key[key] = (msg, used + size + 1)
        consumed += 1
    return messages, consumed, too_big


def by_key(messages: list[Message]) -> dict[tuple[str, int, bool], list[list[int]]]:
    out: dict[tuple[str, int, bool], list[list[int]]] = defaultdict(list)
    for msg in messages:
        out[(msg.topic, msg.qos, msg.retain)].append(msg.ids)
    return dict(out)


@st.composite
def packing(draw: st.DrawFn) -> tuple[list[Row], int, int, int]:
    topics = draw(st.integers(1, 12))  # more than the fast path's 8 keys, sometimes
    n = draw(st.integers(0, 300))
    rows = [
        Row(
            i + 1,
            f"t/{draw(st.integers(0, topics - 1))}",
            1,
            False,
            b"x" * draw(st.integers(0, 60)),
            1,
        )
        for i in range(n)
    ]
    return (
        rows,
        draw(st.sampled_from([1, 3, 100])),
        draw(st.integers(1, 50)),
        draw(st.integers(30, 400)),
    )


@settings(max_examples=300, deadline=None)
@given(packing())
def test_packing_follows_the_rule(case: tuple[list[Row], int, int, int]) -> None:
    rows, per_message, room, max_bytes = case
    too_big: list[Row] = []
    messages, consumed = group_messages(
        rows, per_message, room, max_bytes=max_bytes, too_big=too_big
    )
    expected, expected_consumed, expected_too_big = reference(rows, per_message, room, max_bytes)
    assert consumed == expected_consumed
    assert [r.id for r in too_big] == expected_too_big
    # The order across keys may differ (a key at a time); within a key it may not.
    assert by_key(messages) == by_key(expected)
    assert len(messages) <= room
    for msg in messages:
        assert sum(map(len, msg.payloads)) + len(msg.payloads) + 1 <= max_bytes
