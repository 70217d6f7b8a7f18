r"""Parsing: turning one frame (bytes) into events, as the ``parse:`` section says.

Shared by the drivers that receive frames: ``serial`` (a frame per line or binary
packet) and ``mqtt`` (a frame per message payload). A parse happens in two steps:
the format (``json``, ``csv``, ``kv``, ``regex``, ``struct``, ``raw``) pulls named
raw values out of the frame (``records``), then the field specs convert them
(``conversions``: number, int, bool, string; scale and bias, rounded to the
resolution they give; never a wrong number), attach units and tags, and shape the
events: one event per field (``as: events``, the default) or one event whose value
maps field names to values (``as: mapping``). The events are stamped with the
frame's arrival time, or with the time the frame carries (``time_field:``, read and
checked against the gateway's clock by ``device_time``, which counts the choice);
events that carry the device's time say so (``time_source="device"``), so that a
later step of the gateway's clock leaves their time alone.
The schema of the section is in ``config``; importing it costs no parser.

A frame that cannot be parsed (invalid UTF-8, not a JSON object, a number that is
not a number, a missing required field) or that is ambiguous (a repeated key, a
wrong column count, two records run together) raises ``FrameRejected`` with the
reason; the caller hands the frame and the reason to ``context.reject`` and goes on
with the next frame. A frame of another kind than the one the parser is for
(``select:``, a prefix) raises ``FrameSkipped``, a ``FrameRejected`` that the drivers
count as ``skipped`` instead: it is not damage, and not a dead letter. Either the
whole frame becomes events or none of it does: a frame with one corrupt value is
likely corrupt elsewhere too.

```yaml
- format: kv                          # "T=21.5,H=40"
  fields:
    T: {name: temperature, unit: "°C", required: true}
    H: {name: humidity, unit: "%", required: true}
  unlisted: reject                    # the device sends T and H, nothing else
- format: csv                         # "21.5;40;1"
  delimiter: ";"
  columns: [temperature, humidity, door]
  fields: {door: {type: bool}}
  unlisted: include                   # temperature, humidity come auto-typed
- format: kv                          # "raw=615": 615 * 0.1 - 40 = 21.5 (1 decimal)
  fields:
    raw: {name: temperature, scale: 0.1, bias: -40, unit: "°C"}
- format: json                        # {"t": 21.5, "at": "2026-12-02T07:54:00+01:00"}
  fields: {t: {name: temperature, unit: "°C"}}
  time_field: {field: at, format: rfc3339, max_ahead: 2m, max_behind: 7d}
- format: regex                       # a GPS's RMC sentences; GGA, GSV... are skipped
  select: ["$GPRMC,", "$GNRMC,"]
  match: full
  pattern: '\$G[PN]RMC,(?P<utc>[\d.]+),A,([^,]*,){4}(?P<speed>[\d.]+),[\d.]*,(?P<date>\d{6}),.*'
  fields: {speed: {unit: kn}}
  time_field: {field: utc, format: hhmmss, date_field: date}
- format: struct                      # Plantower PMS5003, 32-byte frames
  byte_order: big
  fields:
    pm2_5: {offset: 12, type: u16, unit: "µg/m³"}
    pm10: {offset: 14, type: u16, unit: "µg/m³"}
```
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from tidegate.config.types import NAME_PATTERN
from tidegate.drivers.parsing.config import (
    CsvParse,
    Encoding,
    FieldSpec,
    FieldType,
    JsonParse,
    KvParse,
    ParseConfig,
    RawParse,
    RegexParse,
    StructField,
    StructParse,
    StructTimeField,
    TimeFieldSpec,
    WireType,
    time_keys,
)
from tidegate.drivers.parsing.conversions import (
    RawValue,
    auto,
    converter,
    number_converter,
    shortest_f32,
)
from tidegate.drivers.parsing.device_time import DeviceClock, TimeReport
from tidegate.drivers.parsing.records import (
    Extractor,
    FrameRejected,
    FrameSkipped,
    decode,
    record_extractor,
)
from tidegate.drivers.parsing.selection import encoded_prefixes
from tidegate.event import Event, Scalar, TimeSource, Value, new_event

__all__ = [  # the config classes, re-exported for the drivers and the simulated device
    "CsvParse", "Encoding", "FieldSpec", "FieldType", "FrameParser", "FrameRejected",
    "FrameSkipped", "JsonParse",
    "KvParse", "ParseConfig", "RawParse", "RawValue", "Reading", "RegexParse", "StructField",
    "StructParse", "StructTimeField", "TimeFieldSpec", "TimeReport", "WireType",
]

_WIRE_CODES: dict[WireType, str] = {
    "u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "f32": "f", "f64": "d",
}
_NAME = re.compile(NAME_PATTERN)


class Reading(NamedTuple):
    """One converted field of a frame: what becomes an event (or a mapping entry)."""

    name: str
    value: Scalar
    unit: str | None
    tags: dict[str, str] | None


# --- the parser -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Output:
    """One field's compiled plan."""

    key: str
    name: str
    convert: Callable[[RawValue], Scalar]
    unit: str | None
    tags: dict[str, str] | None
    required: bool


@dataclass(frozen=True, slots=True)
class _StructOutput:
    key: str
    name: str
    unpack: Callable[[bytes, int], tuple[Any, ...]]
    offset: int
    end: int
    convert: Callable[[RawValue], Scalar] | None
    """f32 shortening, scale, bias and rounding; None keeps the raw value (an int stays
    an int, an f64 the double it is)."""
    unit: str | None
    tags: dict[str, str] | None


def _after_shortening(
    convert: Callable[[RawValue], Scalar] | None,
) -> Callable[[RawValue], Scalar]:
    if convert is None:
        return lambda raw: shortest_f32(raw) if isinstance(raw, float) else raw
    then = convert
    return lambda raw: then(shortest_f32(raw) if isinstance(raw, float) else raw)


def _merge_tags(common: dict[str, str], own: dict[str, str]) -> dict[str, str] | None:
    merged = {**common, **own}
    return merged or None


class FrameParser:
    """Parses frames into events for one source, as one ``parse:`` section says."""

    def __init__(
        self, config: ParseConfig, source: str, time_report: TimeReport | None = None
    ) -> None:
        """``time_report`` counts which clock the events got (``time_field:``): the
        driver's, shared by its parsers; without one nothing is counted (the first
        fallback is still logged)."""
        self.config = config
        self.source = source
        self._tags = config.tags or None
        self._mapping = config.output == "mapping"
        self._extract: Extractor | None = None
        self._outputs: list[_Output] = []
        self._struct: list[_StructOutput] = []
        self._select: tuple[bytes, ...] | None = None
        self._clock: DeviceClock | None = None
        if not isinstance(config, RawParse) and config.time_field is not None:
            self._clock = DeviceClock(
                config.time_field,
                time_report or TimeReport(source),
                config.byte_order if isinstance(config, StructParse) else "big",
            )
        if isinstance(config, StructParse):
            self._compile_struct(config)
        elif not isinstance(config, RawParse):
            self._compile_record(config)

    def _compile_record(self, config: JsonParse | CsvParse | KvParse | RegexParse) -> None:
        self._extract = record_extractor(config)
        self._select = encoded_prefixes(config.select, config.encoding)
        self._outputs = [
            _Output(
                key,
                spec.name or key,
                converter(spec, key),
                spec.unit,
                _merge_tags(config.tags, spec.tags),
                spec.required,
            )
            for key, spec in config.fields.items()
        ]
        self._include_unlisted = config.unlisted == "include"
        self._listed = frozenset(config.fields) | time_keys(config.time_field)

    def _compile_struct(self, config: StructParse) -> None:
        for key, spec in config.fields.items():
            order = ">" if (spec.byte_order or config.byte_order) == "big" else "<"
            layout = struct.Struct(order + _WIRE_CODES[spec.type])
            scaled = spec.scale != 1.0 or spec.bias != 0.0
            rounded = spec.decimals is not None and spec.type in ("f32", "f64")
            convert = (
                number_converter(spec.scale, spec.bias, spec.decimals, key)
                if scaled or rounded
                else None
            )
            if spec.type == "f32":
                # The device's 21.3 is a float32 that reads as 21.299999237060547 in a
                # double: publish the shortest decimal that is the same float32.
                convert = _after_shortening(convert)
            self._struct.append(
                _StructOutput(
                    key,
                    spec.name or key,
                    layout.unpack_from,
                    spec.offset,
                    spec.offset + layout.size,
                    convert,
                    spec.unit,
                    _merge_tags(config.tags, spec.tags),
                )
            )

    def readings(
        self, frame: bytes, received: float
    ) -> tuple[list[Reading], float, TimeSource]:
        """The frame's converted fields, their time and whose clock gave it: the one
        the frame carries (``time_field:``, checked against ``received``), ``"device"``;
        or ``received``, None."""
        clock = self._clock
        if self._extract is None:  # struct (``parse`` takes a raw frame whole)
            values = self._struct_values(frame)
            device = None if clock is None else clock.event_time(frame, received)
            return (values, *_stamp(device, received))
        if self._select is not None and not frame.startswith(self._select):
            raise FrameSkipped(f"not selected: {frame[:16]!r}")
        record = self._extract(frame)
        found: list[Reading] = []
        for out in self._outputs:
            raw = record.get(out.key)
            if raw is None:
                if out.required:
                    raise FrameRejected(f"required field '{out.key}' is missing")
                continue
            if isinstance(raw, dict | list):
                # A value where the device puts one was expected: a damaged record
                # (e.g. one cut short and glued to the next: `{"a":1,"b":{"a":3,...}}`).
                raise FrameRejected(f"field '{out.key}' holds a {type(raw).__name__}, not a value")
            found.append(Reading(out.name, out.convert(raw), out.unit, out.tags))
        if self._include_unlisted:
            for key, raw in record.items():
                if key in self._listed or raw is None or isinstance(raw, dict | list):
                    continue
                if _NAME.match(key) and len(key) <= 64:
                    found.append(Reading(key, auto(raw), None, self._tags))
        if not found:
            raise FrameRejected("no configured field in the frame")
        # Last: a frame rejected for its values is not counted as a device time.
        device = None if clock is None else clock.event_time(record, received)
        return (found, *_stamp(device, received))

    def _struct_values(self, frame: bytes) -> list[Reading]:
        found: list[Reading] = []
        size = len(frame)
        for out in self._struct:
            if out.end > size:
                raise FrameRejected(
                    f"frame of {size} bytes is too short for field '{out.key}' "
                    f"(bytes {out.offset}..{out.end - 1})"
                )
            raw = out.unpack(frame, out.offset)[0]
            if isinstance(raw, float) and not math.isfinite(raw):
                raise FrameRejected(f"field '{out.key}': {raw} is not a finite number")
            value: Scalar = raw if out.convert is None else out.convert(raw)
            found.append(Reading(out.name, value, out.unit, out.tags))
        return found

    def parse(self, frame: bytes, received: float) -> list[Event]:
        """Events for one frame, stamped ``received`` unless the frame carries a time.

        Raises ``FrameRejected`` when the frame cannot be parsed.
        """
        config = self.config
        if isinstance(config, RawParse):
            text = frame.hex() if config.encoding == "hex" else decode(frame, config.encoding)
            return [
                new_event(
                    self.source, config.name, text, unit=config.unit, tags=self._tags,
                    time=received,
                )
            ]
        found, when, time_source = self.readings(frame, received)
        if self._mapping:
            value: Value = {reading.name: reading.value for reading in found}
            return [
                new_event(
                    self.source, config.name, value, tags=self._tags, time=when,
                    time_source=time_source,
                )
            ]
        return [
            new_event(
                self.source, r.name, r.value, unit=r.unit, tags=r.tags, time=when,
                time_source=time_source,
            )
            for r in found
        ]


def _stamp(device: float | None, received: float) -> tuple[float, TimeSource]:
    """The events' time and its source: the device's checked time, else arrival."""
    return (received, None) if device is None else (device, "device")
