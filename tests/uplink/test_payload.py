"""One event-to-JSON function: the wire payload and every other view of an event agree."""

from __future__ import annotations

import math

import orjson

from tidegate.event import new_event
from tidegate.payload import encode_event, event_document, join_payloads

T = 1_700_000_000.125


def test_the_wire_payload_holds_every_key_in_a_fixed_order() -> None:
    event = new_event("gh", "temperature", 21.5, unit="°C", tags={"room": "n"}, time=T)
    doc = orjson.loads(encode_event(event, 7, "gw1"))
    assert list(doc) == ["id", "gateway", "source", "name", "value", "time", "seq", "unit", "tags"]
    assert doc == {
        "id": event.id,
        "gateway": "gw1",
        "source": "gh",
        "name": "temperature",
        "value": 21.5,
        "time": "2023-11-14T22:13:20.125000Z",
        "seq": 7,
        "unit": "°C",
        "tags": {"room": "n"},
    }


def test_no_unit_no_tags_and_an_untrusted_clock_show_in_the_payload() -> None:
    event = new_event("gh", "door", True, time=T)
    doc = orjson.loads(encode_event(event, 1, "gw1", synced=False))
    assert "unit" not in doc and "tags" not in doc
    assert doc["time_synced"] is False
    assert "time_synced" not in orjson.loads(encode_event(event, 1, "gw1"))


def test_a_recording_or_a_tail_is_the_payload_without_gateway_and_seq() -> None:
    event = new_event("gh", "rh", {"a": 1, "b": "x"}, unit="%", time=T)
    wire = orjson.loads(encode_event(event, 3, "gw1"))
    for key in ("gateway", "seq"):
        del wire[key]
    assert event_document(event) == wire
    del wire["id"]
    assert event_document(event, with_id=False) == wire
    assert list(event_document(event, with_id=False))[:4] == ["source", "name", "value", "time"]


def test_values_json_cannot_carry_become_null_and_batches_are_arrays() -> None:
    payloads = [encode_event(new_event("s", "v", math.nan, time=T), n, "g") for n in (1, 2)]
    batch = orjson.loads(join_payloads(payloads))
    assert [e["value"] for e in batch] == [None, None]
    assert [e["seq"] for e in batch] == [1, 2]
