"""``influx``: InfluxDB line protocol, for Telegraf's MQTT consumer (``data_format = "influx"``).

One line per event: the measurement is the event's name; ``gateway``, ``source``,
``unit`` and the event's tags are tags (sorted by key); the value is the field
``value`` (a structured value: one field per key), with ``seq`` as an integer field
(and ``time_synced=false`` where the gateway's clock was not trusted); the time is
the event's, in nanoseconds::

    temperature,gateway=barn,source=greenhouse,unit=°C value=21.5,seq=1042i 1733140800123456000

A message of several events is their lines, one per line. A value that has no
field in line protocol (null, as NaN is stored) leaves only ``seq``. What line
protocol cannot hold goes to the dead letters rather than into a line a parser
rejects (Telegraf then drops the whole message): a control character (newline,
tab...) in a name, tag or key, a newline in a text value, an empty key, a name
or key ending in a backslash, a name starting with ``#`` (a comment), an integer
beyond 64 bits, a structured value with a key ``seq`` or ``time_synced``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar

from tidegate.uplink.formats.base import Format, FormatError
from tidegate.uplink.formats.stored import since_epoch, stored_event

# Backslashes are not escaped outside string values: parsers (Telegraf's among them)
# only unescape "\,", "\=" and "\ " there, and would read "\\" as two.
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INT64 = range(-(1 << 63), 1 << 63)
OWN_FIELDS = ("seq", "time_synced")


class InfluxLines(Format):
    name: ClassVar[str] = "influx"

    def event(self, stored: bytes) -> bytes:
        doc = stored_event(stored, ("name",))
        if doc["name"].startswith("#"):
            raise FormatError("a name starting with # reads as a comment in line protocol")
        given = doc.get("tags") or {}
        if not isinstance(given, dict):
            raise FormatError("the event's tags are not a mapping")
        tags = {str(k): str(v) for k, v in given.items()}
        for key in ("gateway", "source", "unit"):
            if doc.get(key) is not None:
                tags[key] = str(doc[key])
        value = doc.get("value")
        fields = dict(value) if isinstance(value, dict) else {"value": value}
        for own in OWN_FIELDS:
            if own in fields:
                raise FormatError(f"a value key named {own!r} would overwrite the event's {own}")
        seq = doc.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            fields["seq"] = seq
        if doc.get("time_synced") is False:
            fields["time_synced"] = False
        line = _escaped(doc["name"], _MEASUREMENT_ESCAPES)
        line += "".join(
            f",{_escaped(k, _KEY_ESCAPES)}={_escaped(v, _KEY_ESCAPES)}"
            for k, v in sorted(tags.items())
            if k and v
        )
        written = [
            f"{_escaped(str(k), _KEY_ESCAPES)}={_field(v)}"
            for k, v in fields.items()
            if v is not None
        ]
        if not written:
            raise FormatError("the event has no value to write")
        return f"{line} {','.join(written)} {_nanoseconds(doc.get('time'))}".encode()

    def join(self, events: Sequence[bytes]) -> bytes:
        return b"\n".join(events)


def _escaped(text: str, table: dict[int, str]) -> str:
    """A name, tag or field key, escaped; FormatError where line protocol cannot hold it."""
    if not text:
        raise FormatError("an empty name or key cannot be written in line protocol")
    if _CONTROL.search(text):
        raise FormatError(f"a control character (newline, tab...) in {text!r} cannot be written")
    if text.endswith("\\"):
        raise FormatError(f"{text!r} ends in a backslash, which would escape what follows it")
    return text.translate(table)


def _field(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value not in _INT64:
            raise FormatError(f"the integer {value} does not fit line protocol's 64 bits")
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise FormatError("a newline in a text value cannot be written in line protocol")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise FormatError(f"a value of type {type(value).__name__} has no line-protocol field")


def _nanoseconds(time: object) -> int:
    """The event's time in integer nanoseconds (exact: no float on the way)."""
    return since_epoch(time) // _MICROSECOND * 1000


_MICROSECOND = timedelta(microseconds=1)
