"""``influx``: InfluxDB line protocol, for Telegraf's MQTT consumer (``data_format = "influx"``).

One line per event: the measurement is the event's name; ``gateway``, ``source``,
``unit`` and the event's tags are tags (sorted by key); the value is the field
``value`` (a structured value: one field per key), with ``seq`` as an integer field
(and ``time_synced=false`` where the gateway's clock was not trusted); the time is
the event's, in nanoseconds::

    temperature,gateway=barn,source=greenhouse,unit=°C value=21.5,seq=1042i 1733140800123456000

A message of several events is their lines, one per line. A value that has no
field in line protocol (null, as NaN is stored) leaves only ``seq``. A newline
in a name, tag or text value cannot be written: such an event goes to the dead
letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

import orjson

from tidegate.uplink.formats.base import Format, FormatError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\\": "\\\\"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\\": "\\\\"})


class InfluxLines(Format):
    name: ClassVar[str] = "influx"

    def event(self, stored: bytes) -> bytes:
        try:
            doc = orjson.loads(stored)
        except orjson.JSONDecodeError as exc:
            raise FormatError(f"not a JSON event: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not doc["name"]:
            raise FormatError("the event has no name")
        tags = {str(k): str(v) for k, v in (doc.get("tags") or {}).items()}
        for key in ("gateway", "source", "unit"):
            if doc.get(key) is not None:
                tags[key] = str(doc[key])
        value = doc.get("value")
        fields = dict(value) if isinstance(value, dict) else {"value": value}
        if isinstance(doc.get("seq"), int):
            fields["seq"] = doc["seq"]
        if doc.get("time_synced") is False:
            fields["time_synced"] = False
        line = _escaped(doc["name"], _MEASUREMENT_ESCAPES)
        line += "".join(
            f",{_escaped(k, _KEY_ESCAPES)}={_escaped(v, _KEY_ESCAPES)}"
            for k, v in sorted(tags.items())
            if k and v
        )
        written = [
            f"{_escaped(k, _KEY_ESCAPES)}={_field(v)}" for k, v in fields.items() if v is not None
        ]
        if not written:
            raise FormatError("the event has no value to write")
        return f"{line} {','.join(written)} {_nanoseconds(doc.get('time'))}".encode()

    def join(self, events: Sequence[bytes]) -> bytes:
        return b"\n".join(events)


def _escaped(text: str, table: dict[int, str]) -> str:
    if "\n" in text or "\r" in text:
        raise FormatError(f"a newline in {text!r} cannot be written in line protocol")
    return text.translate(table)


def _field(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise FormatError("a newline in a text value cannot be written in line protocol")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise FormatError(f"a value of type {type(value).__name__} has no line-protocol field")


def _nanoseconds(time: object) -> int:
    """The event's RFC 3339 time in integer nanoseconds (exact: no float on the way)."""
    if not isinstance(time, str):
        raise FormatError("the event has no time")
    try:
        when = datetime.fromisoformat(time)
    except ValueError:
        raise FormatError(f"the event's time {time!r} is not RFC 3339") from None
    if when.tzinfo is None:
        raise FormatError(f"the event's time {time!r} has no offset")
    return (when - _EPOCH) // _MICROSECOND * 1000


_MICROSECOND = datetime.resolution
