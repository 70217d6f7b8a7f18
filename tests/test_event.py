"""The Event's own contract: immutable, hashable, stamped when not given a time or id
(its ``__init__`` is written by hand for speed: these pin what the generated one did)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from tidegate.event import Event


def test_an_event_cannot_be_changed() -> None:
    event = Event("meter", "power", 1.5)
    for name in ("source", "value", "seq", "time_source"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, name, 0)
    assert event.seq == 0 and event.value == 1.5


def test_fields_by_position_and_by_name_make_the_same_event() -> None:
    by_position = Event("m", "p", 2, 10.0, "id-1", 3, "W", {"room": "a"}, "device")
    by_name = Event(
        source="m",
        name="p",
        value=2,
        time=10.0,
        id="id-1",
        seq=3,
        unit="W",
        tags={"room": "a"},
        time_source="device",
    )
    assert by_position == by_name
    assert dataclasses.astuple(by_name) == (
        "m",
        "p",
        2,
        10.0,
        "id-1",
        3,
        "W",
        {"room": "a"},
        "device",
    )


def test_defaults_stamp_now_and_a_new_increasing_id() -> None:
    before = time.time()
    first, second = Event("m", "p", 1), Event("m", "p", 1)
    assert before <= first.time <= second.time <= time.time()
    assert first.id < second.id and len(first.id) == 36
    assert (first.seq, first.unit, first.tags, first.time_source) == (0, None, None, None)


def test_replace_keeps_every_other_field_and_events_hash_by_value() -> None:
    event = Event("m", "p", 1, 5.0, "id-1", unit="W")
    accepted = dataclasses.replace(event, seq=7)
    assert accepted == Event("m", "p", 1, 5.0, "id-1", 7, "W")
    assert {event, Event("m", "p", 1, 5.0, "id-1", unit="W")} == {event}
