"""Parsing: turning one frame (bytes) into events, as the ``parse:`` section says.

Shared by the drivers that receive frames: ``serial`` (a frame per line or binary
packet) and ``mqtt`` (a frame per message payload). A parse happens in two steps:
the format (``json``, ``csv``, ``kv``, ``regex``, ``struct``, ``raw``) pulls named
raw values out of the frame (``_records``), then the field specs convert them
(number, int, bool, string; scale and bias, rounded to the resolution they give),
attach units and tags, and shape the events: one event per field (``as: events``,
the default) or one event whose value maps field names to values (``as: mapping``).
The schema of the section is in ``_parse_config``.

A frame that cannot be parsed (invalid UTF-8, not a JSON object, a number that is
not a number, a missing required field) or that is ambiguous (a repeated key, a
wrong column count, two records run together) raises ``FrameRejected`` with the
reason; the caller hands the frame and the reason to ``context.reject`` and goes on
with the next frame. Either the whole frame becomes events or none of it does: a
frame with one corrupt value is likely corrupt elsewhere too.

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
from datetime import datetime
from typing import Any, NamedTuple, TypeAlias

from tidegate.drivers._parse_config import (
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
    TimestampSpec,
    WireType,
)
from tidegate.drivers._records import Extractor, FrameRejected, decode, record_extractor
from tidegate.event import Event, Scalar, Value, new_event
from tidegate.schema_types import NAME_PATTERN

__all__ = [  # the config classes, re-exported for the drivers and the simulated device
    "CsvParse", "Encoding", "FieldSpec", "FieldType", "FrameParser", "FrameRejected", "JsonParse",
    "KvParse", "ParseConfig", "RawParse", "RawValue", "Reading", "RegexParse", "StructField",
    "StructParse", "TimestampSpec", "WireType",
]

RawValue: TypeAlias = str | int | float | bool
"""A value as a format extracts it, before the field's conversion."""

_WIRE_CODES: dict[WireType, str] = {
    "u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "f32": "f", "f64": "d",
}
_NAME = re.compile(NAME_PATTERN)
_TRUE = frozenset({"1", "true", "on", "yes", "y", "t", "high"})
_FALSE = frozenset({"0", "false", "off", "no", "n", "f", "low"})


class Reading(NamedTuple):
    """One converted field of a frame: what becomes an event (or a mapping entry)."""

    name: str
    value: Scalar
    unit: str | None
    tags: dict[str, str] | None


# --- conversions --------------------------------------------------------------------


def _finite(value: float, key: str) -> float:
    if not math.isfinite(value):
        raise FrameRejected(f"field '{key}': {value} is not a finite number")
    return value


def _to_number(raw: RawValue, key: str) -> float:
    if isinstance(raw, bool):
        raise FrameRejected(f"field '{key}': {raw} is not a number")
    if isinstance(raw, int | float):
        return _finite(float(raw), key)
    try:
        return _finite(float(raw), key)
    except ValueError:
        raise FrameRejected(f"field '{key}': {raw[:40]!r} is not a number") from None


def _places(number: RawValue) -> int:
    """Decimal places ``number`` is written with: "21.50" -> 1 (trailing zeros do not
    count), 0.25 -> 2, 3 -> 0, 1e-05 -> 5. Runs on every scaled value: kept cheap."""
    if isinstance(number, str):
        text = number.strip()
    elif isinstance(number, float):
        text = repr(number)
    else:
        return 0
    if "e" in text or "E" in text:
        mantissa, _, exponent = text.lower().partition("e")
        fraction = mantissa.partition(".")[2].rstrip("0")
        try:
            return max(0, len(fraction) - int(exponent))
        except ValueError:
            return len(fraction)
    dot = text.find(".")
    return 0 if dot < 0 else len(text.rstrip("0")) - dot - 1


def _to_int(raw: RawValue, key: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return int(text, 16) if text[:2].lower() == "0x" else int(text)
        except ValueError:
            pass
    raise FrameRejected(f"field '{key}': {str(raw)[:40]!r} is not an integer")


def _to_bool(raw: RawValue, key: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float):
        return raw != 0
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise FrameRejected(f"field '{key}': {raw[:40]!r} is not a boolean")


def _auto(raw: RawValue) -> Scalar:
    """Type an unlisted value: keep JSON's types, guess for text."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    word = text.lower()
    if word in ("true", "false"):
        return word == "true"
    try:
        number = float(text)
    except ValueError:
        return raw
    return number if math.isfinite(number) else raw


def _number_converter(
    scale: float, bias: float, decimals: int | None, key: str
) -> Callable[[RawValue], Scalar]:
    if scale == 1.0 and bias == 0.0:
        if decimals is None:
            return lambda raw: _to_number(raw, key)
        return lambda raw: round(_to_number(raw, key), decimals)
    if decimals is not None:
        return lambda raw: round(_finite(_to_number(raw, key) * scale + bias, key), decimals)
    scale_places, bias_places = _places(scale), _places(bias)

    def scaled(raw: RawValue) -> float:
        # Binary floating point makes 3 * 0.1 0.30000000000000004: round to what the
        # raw value, the scale and the bias can resolve, which is exact.
        value = _finite(_to_number(raw, key) * scale + bias, key)
        return round(value, max(_places(raw) + scale_places, bias_places))

    return scaled


def _converter(spec: FieldSpec, key: str) -> Callable[[RawValue], Scalar]:
    if spec.type == "number":
        return _number_converter(spec.scale, spec.bias, spec.decimals, key)
    if spec.type == "int":
        return lambda raw: _to_int(raw, key)
    if spec.type == "bool":
        return lambda raw: _to_bool(raw, key)
    return lambda raw: raw if isinstance(raw, str) else str(raw)


def _timestamp(raw: RawValue, spec: TimestampSpec) -> float:
    if spec.format == "iso8601":
        if not isinstance(raw, str):
            raise FrameRejected(f"timestamp '{spec.field}': {raw!r} is not an ISO 8601 string")
        try:
            moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise FrameRejected(
                f"timestamp '{spec.field}': {raw[:40]!r} is not an ISO 8601 time"
            ) from None
        if moment.tzinfo is None:
            raise FrameRejected(f"timestamp '{spec.field}': {raw[:40]!r} has no UTC offset")
        return moment.timestamp()
    seconds = _to_number(raw, spec.field)
    return seconds / 1000.0 if spec.format == "unix_ms" else seconds


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
    """Scale, bias and rounding; None keeps the raw value (an int stays an int)."""
    unit: str | None
    tags: dict[str, str] | None


def _merge_tags(common: dict[str, str], own: dict[str, str]) -> dict[str, str] | None:
    merged = {**common, **own}
    return merged or None


class FrameParser:
    """Parses frames into events for one source, as one ``parse:`` section says."""

    def __init__(self, config: ParseConfig, source: str) -> None:
        self.config = config
        self.source = source
        self._tags = config.tags or None
        self._mapping = config.output == "mapping"
        self._extract: Extractor | None = None
        self._outputs: list[_Output] = []
        self._struct: list[_StructOutput] = []
        self._timestamp: TimestampSpec | None = None
        if isinstance(config, StructParse):
            self._compile_struct(config)
        elif not isinstance(config, RawParse):
            self._compile_record(config)

    def _compile_record(self, config: JsonParse | CsvParse | KvParse | RegexParse) -> None:
        self._extract = record_extractor(config)
        self._outputs = [
            _Output(
                key,
                spec.name or key,
                _converter(spec, key),
                spec.unit,
                _merge_tags(config.tags, spec.tags),
                spec.required,
            )
            for key, spec in config.fields.items()
        ]
        self._include_unlisted = config.unlisted == "include"
        self._listed = frozenset(config.fields) | (
            {config.timestamp.field} if config.timestamp else set()
        )
        self._timestamp = config.timestamp

    def _compile_struct(self, config: StructParse) -> None:
        for key, spec in config.fields.items():
            order = ">" if (spec.byte_order or config.byte_order) == "big" else "<"
            layout = struct.Struct(order + _WIRE_CODES[spec.type])
            scaled = spec.scale != 1.0 or spec.bias != 0.0
            rounded = spec.decimals is not None and spec.type in ("f32", "f64")
            self._struct.append(
                _StructOutput(
                    key,
                    spec.name or key,
                    layout.unpack_from,
                    spec.offset,
                    spec.offset + layout.size,
                    _number_converter(spec.scale, spec.bias, spec.decimals, key)
                    if scaled or rounded
                    else None,
                    spec.unit,
                    _merge_tags(config.tags, spec.tags),
                )
            )

    def readings(self, frame: bytes) -> tuple[list[Reading], float | None]:
        """The frame's converted fields, and the time the frame carries (if configured)."""
        if self._struct:
            return self._struct_values(frame), None
        assert self._extract is not None
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
                    found.append(Reading(key, _auto(raw), None, self._tags))
        moment: float | None = None
        if self._timestamp is not None:
            raw_time = record.get(self._timestamp.field)
            if raw_time is None:
                raise FrameRejected(f"timestamp field '{self._timestamp.field}' is missing")
            moment = _timestamp(raw_time, self._timestamp)
        if not found:
            raise FrameRejected("no configured field in the frame")
        return found, moment

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
        found, moment = self.readings(frame)
        when = received if moment is None else moment
        if self._mapping:
            value: Value = {reading.name: reading.value for reading in found}
            return [new_event(self.source, config.name, value, tags=self._tags, time=when)]
        return [
            new_event(self.source, r.name, r.value, unit=r.unit, tags=r.tags, time=when)
            for r in found
        ]
