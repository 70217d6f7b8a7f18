"""Recorded events as JSON lines: what ``tidegate rules test`` reads and writes.

Input: one event per line, as tidegate publishes them (a line holding a JSON
array of events, as with ``mqtt.events_per_message`` > 1, gives several):

```json
{"source": "greenhouse", "name": "temperature", "value": 21.4, "time": "2026-11-26T13:05:00Z",
 "unit": "°C", "tags": {"room": "north"}}
```
``source``, ``name``, ``value`` and ``time`` are required; ``time`` is RFC 3339
(UTC when it has no offset) or epoch seconds. ``unit``, ``tags``, ``id``,
``seq`` and ``gateway`` may be given, and so may the marks a published event
carries about its time: ``time_source: "device"`` (the time is the device's own;
it is kept, so the output says it too), ``time_synced`` and ``time_corrected``
(true/false; they describe the gateway's clock when it was published, and are
not carried over). Other keys are refused (they are usually typos). Blank
lines and lines starting with ``#`` are skipped. A line that cannot be read is
reported with its number and skipped, never fatal.

Output: one object per routed event — the route (``rule``, ``topic``,
``qos``, ``retain``, ``priority``), then the event as on the wire without
``gateway`` and ``seq`` (and without ``id`` unless asked: operators make new
ids for the events they create, so ids would make the output differ from run
to run).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from tidegate.event import Event, Scalar, Value
from tidegate.ids import uuid7
from tidegate.outgoing import Outgoing
from tidegate.payload import event_document
from tidegate.rules.compiler import Route

_KEYS = frozenset(
    {"source", "name", "value", "time", "unit", "tags", "id", "seq", "gateway", "time_source",
     "time_synced", "time_corrected"}
)


@dataclass(frozen=True, slots=True)
class UnreadableLine:
    number: int
    reason: str


class _Refused(ValueError):
    pass


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise _Refused(f"`{key}` must be non-empty text")
    return value


def _scalar(value: Any, what: str) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise _Refused(f"{what} must be finite")
    if isinstance(value, bool | int | float | str):
        return value
    raise _Refused(f"{what} must be a number, true/false or text")


def _value(value: Any) -> Value:
    if isinstance(value, dict):
        return {str(k): _scalar(v, f"`value.{k}`") for k, v in value.items()}
    return _scalar(value, "`value`")


_LATEST = 253_402_300_800.0  # 10000-01-01T00:00:00Z


def parse_time(value: Any) -> float:
    """RFC 3339 text (UTC if it has no offset) or epoch seconds, from 1970 to 9999."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _Refused(f"`time` {value!r} is not RFC 3339 (2026-11-26T13:05:00Z)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    else:
        raise _Refused("`time` must be RFC 3339 text or epoch seconds")
    if not 0.0 <= seconds < _LATEST:  # NaN fails this too
        raise _Refused("`time` must be between 1970 and 9999")
    return seconds


def _tags(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _Refused("`tags` must be a mapping of text to text")
    return {str(k): v for k, v in value.items()} or None


def event_from_json(doc: Any) -> Event:
    """One recorded event; raises ValueError saying what is wrong."""
    if not isinstance(doc, dict):
        raise _Refused("an event must be a JSON object")
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise _Refused(f"unknown key {unknown[0]!r}; an event has {', '.join(sorted(_KEYS))}")
    for key in ("value", "time"):
        if key not in doc:
            raise _Refused(f"missing `{key}`")
    time = parse_time(doc["time"])
    unit = doc.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise _Refused("`unit` must be text")
    seq = doc.get("seq", 0)
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise _Refused("`seq` must be an integer")
    event_id = doc.get("id")
    if event_id is not None and not isinstance(event_id, str):
        raise _Refused("`id` must be text")
    clock = doc.get("time_source")
    if clock not in (None, "device"):
        raise _Refused("`time_source` must be \"device\" (or left out: the gateway's clock)")
    for mark in ("time_synced", "time_corrected"):
        if not isinstance(doc.get(mark, False), bool):
            raise _Refused(f"`{mark}` must be true or false")
    return Event(
        _text(doc, "source"),
        _text(doc, "name"),
        _value(doc["value"]),
        time,
        event_id or uuid7(int(time * 1000)),
        seq,
        unit,
        _tags(doc.get("tags")),
        "device" if clock == "device" else None,
    )


def read_events(lines: Iterable[str], problems: list[UnreadableLine]) -> Iterator[Event]:
    """The events of JSON lines; each unreadable line is appended to ``problems``."""
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            doc = orjson.loads(text)
            docs = doc if isinstance(doc, list) else [doc]
            events = [event_from_json(d) for d in docs]
        except orjson.JSONDecodeError as exc:
            problems.append(UnreadableLine(number, f"not JSON: {exc}"))
            continue
        except ValueError as exc:
            problems.append(UnreadableLine(number, str(exc)))
            continue
        yield from events


def routed_line(outgoing: Outgoing, route: Route, *, with_id: bool = False) -> bytes:
    """One output line (without the newline)."""
    doc: dict[str, object] = {
        "rule": route.rule,
        "topic": outgoing.topic,
        "qos": outgoing.qos,
        "retain": outgoing.retain,
        "priority": route.priority,
    }
    doc |= event_document(outgoing.event, with_id=with_id)
    return orjson.dumps(doc)
