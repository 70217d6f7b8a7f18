"""Parsing: turning one frame (bytes) into events, as the ``parse:`` section says.

Shared by the drivers that receive frames: ``serial`` (a frame per line or binary
packet) and ``mqtt`` (a frame per message payload). A parse happens in two steps:
the format (``json``, ``csv``, ``kv``, ``regex``, ``struct``, ``raw``) pulls named
raw values out of the frame, then the field specs convert them (number, int, bool,
string; scale and bias), attach units and tags, and shape the events: one event
per field (``as: events``, the default) or one event whose value maps field names
to values (``as: mapping``).

A frame that cannot be parsed (invalid UTF-8, not a JSON object, a number that is
not a number, a missing required field) raises ``FrameRejected`` with the reason;
the caller hands the frame and the reason to ``context.reject`` and goes on with
the next frame. Either the whole frame becomes events or none of it does: a frame
with one corrupt value is likely corrupt elsewhere too.

```yaml
- format: kv                          # "T=21.5,H=40"
  fields:
    T: {name: temperature, unit: "°C"}
    H: {name: humidity, unit: "%"}
- format: csv                         # "21.5;40;1"
  delimiter: ";"
  columns: [temperature, humidity, door]
  fields: {door: {type: bool}}
  unlisted: include                   # temperature, humidity come auto-typed
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple, TypeAlias

import orjson
from pydantic import Field, field_validator, model_validator

from tidegate.drivers._checksums import ByteOrder
from tidegate.errors import TidegateError
from tidegate.event import Event, Scalar, Value, new_event
from tidegate.schema_types import NAME_PATTERN, Name, Section

RawValue: TypeAlias = str | int | float | bool
"""A value as a format extracts it, before the field's conversion."""

FieldType: TypeAlias = Literal["number", "int", "bool", "string"]
WireType: TypeAlias = Literal["u8", "i8", "u16", "i16", "u32", "i32", "f32", "f64"]
Encoding: TypeAlias = Literal["utf-8", "ascii", "latin-1"]

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


class FrameRejected(TidegateError):
    """A frame that cannot become events; ``str(exc)`` is the reason."""


class FieldSpec(Section):
    """How one named value of a text or JSON frame becomes an event."""

    name: Name | None = Field(None, description="Event name; default: the field's key.")
    type: FieldType = Field(
        "number", description="Convert to `number` (float), `int`, `bool` or `string`."
    )
    unit: str | None = Field(None, max_length=32, description="Unit of the value, e.g. `°C`.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags for this field's events.")
    scale: float = Field(1.0, description="For `number`: value = raw * scale + bias.")
    bias: float = Field(0.0, description="For `number`: added after scaling.")
    required: bool = Field(
        False, description="Reject the frame when this field is missing (else skip the field)."
    )

    @model_validator(mode="after")
    def _scaling_is_numeric(self) -> FieldSpec:
        if self.type != "number" and (self.scale != 1.0 or self.bias != 0.0):
            raise ValueError("scale and bias apply to `type: number` fields only")
        return self


class StructField(Section):
    """One value at a fixed offset of a binary frame."""

    offset: int = Field(ge=0, le=65535, description="Byte offset in the frame (from byte 0).")
    type: WireType = Field(description="u8, i8, u16, i16, u32, i32, f32 or f64.")
    byte_order: ByteOrder | None = Field(None, description="Override the parser's byte order.")
    name: Name | None = Field(None, description="Event name; default: the field's key.")
    unit: str | None = Field(None, max_length=32, description="Unit of the value.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags for this field's events.")
    scale: float = Field(1.0, description="value = raw * scale + bias (an int if both are unset).")
    bias: float = Field(0.0, description="Added after scaling.")


class TimestampSpec(Section):
    """A field that carries the reading's own time."""

    field: str = Field(min_length=1, description="Key of the field holding the time.")
    format: Literal["unix", "unix_ms", "iso8601"] = Field(
        "unix", description="Seconds or milliseconds since 1970, or an ISO 8601 string."
    )


class _ParseBase(Section):
    tags: dict[str, str] = Field(default_factory=dict, description="Tags for every event.")
    output: Literal["events", "mapping"] = Field(
        "events",
        alias="as",
        description="`events`: one event per field; `mapping`: one event whose value maps "
        "field names to values (units and per-field tags are not kept).",
    )
    name: Name = Field(
        "reading", description="Event name with `as: mapping` (and for `raw`)."
    )


class _RecordParse(_ParseBase):
    """Formats that yield named values: the fields pick and convert them."""

    fields: dict[str, FieldSpec] = Field(
        default_factory=dict, description="The fields to emit, by key, with their conversion."
    )
    unlisted: Literal["ignore", "include"] = Field(
        "ignore",
        description="What to do with keys not in `fields`: drop them, or emit them with an "
        "automatic type (bool for true/false, number when numeric, else string).",
    )
    timestamp: TimestampSpec | None = Field(
        None, description="Take the event time from a field instead of the arrival time."
    )
    encoding: Encoding = Field("utf-8", description="Text encoding of the frame.")

    @model_validator(mode="after")
    def _something_to_emit(self) -> _RecordParse:
        if not self.fields and self.unlisted == "ignore":
            raise ValueError("list `fields`, or set `unlisted: include`, or nothing is emitted")
        return self


class JsonParse(_RecordParse):
    """One JSON object per frame: ``{"t": 21.5, "h": 40}``."""

    format: Literal["json"] = Field("json", description="Frames are JSON objects.")
    # A dotted key (`env.t`) reaches into nested objects.


class CsvParse(_RecordParse):
    """Delimited values in fixed column order: ``21.5,40``. No quoting."""

    format: Literal["csv"] = Field("csv", description="Frames are delimited columns.")
    columns: list[str] = Field(
        min_length=1, description='Column keys in order; "" or "_" skips a column.'
    )
    delimiter: str = Field(",", min_length=1, description="Column separator.")

    @model_validator(mode="after")
    def _fields_are_columns(self) -> CsvParse:
        unknown = [key for key in self.fields if key not in self.columns]
        if unknown:
            raise ValueError(f"fields {unknown} are not in `columns`")
        return self


class KvParse(_RecordParse):
    """Key/value pairs: ``T=21.5,H=40``."""

    format: Literal["kv"] = Field("kv", description="Frames are key=value pairs.")
    pair_separator: str = Field(",", min_length=1, description="Between pairs.")
    kv_separator: str = Field("=", min_length=1, description="Between a key and its value.")


class RegexParse(_RecordParse):
    """A regular expression whose named groups are the fields."""

    format: Literal["regex"] = Field("regex", description="Fields are a regex's named groups.")
    pattern: str = Field(description="Python regular expression with `(?P<key>...)` groups.")
    match: Literal["search", "full"] = Field(
        "search", description="`search` anywhere in the frame, or match the `full` frame."
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if not compiled.groupindex:
            raise ValueError("the pattern needs named groups, e.g. (?P<temperature>[-0-9.]+)")
        return pattern


class StructParse(_ParseBase):
    """Binary values at fixed offsets, e.g. a sensor datasheet's frame layout."""

    format: Literal["struct"] = Field("struct", description="Frames are binary records.")
    byte_order: ByteOrder = Field("big", description="Default byte order of the fields.")
    fields: dict[str, StructField] = Field(min_length=1, description="The values, by key.")


class RawParse(_ParseBase):
    """The whole frame as one string event."""

    format: Literal["raw"] = Field("raw", description="The frame is the value.")
    encoding: Encoding | Literal["hex"] = Field(
        "utf-8", description="Text encoding of the frame, or `hex` for binary frames."
    )
    unit: str | None = Field(None, max_length=32, description="Unit of the value.")
    name: Name = Field("raw", description="Event name.")


ParseConfig: TypeAlias = Annotated[
    JsonParse | CsvParse | KvParse | RegexParse | StructParse | RawParse,
    Field(discriminator="format"),
]


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


def _converter(spec: FieldSpec, key: str) -> Callable[[RawValue], Scalar]:
    if spec.type == "number":
        scale, bias = spec.scale, spec.bias
        if scale == 1.0 and bias == 0.0:
            return lambda raw: _to_number(raw, key)
        return lambda raw: _finite(_to_number(raw, key) * scale + bias, key)
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


# --- extraction: frame -> raw values by key -------------------------------------------


def _decode(frame: bytes, encoding: str) -> str:
    try:
        return frame.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FrameRejected(f"invalid {encoding} at byte {exc.start}") from None


def _dig(record: Mapping[str, Any], key: str) -> Any:
    """``record[key]``, or the nested value a dotted key names; None when absent."""
    if key in record:
        return record[key]
    node: Any = record
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _json_record(frame: bytes, config: JsonParse) -> dict[str, Any]:
    try:
        record = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise FrameRejected(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise FrameRejected(f"expected a JSON object, got {type(record).__name__}")
    if len(config.fields) and any("." in key for key in config.fields):
        nested = {key: _dig(record, key) for key in config.fields if "." in key}
        record.update({key: value for key, value in nested.items() if value is not None})
    return record


def _csv_record(frame: bytes, config: CsvParse) -> dict[str, Any]:
    cells = _decode(frame, config.encoding).split(config.delimiter)
    if len(cells) != len(config.columns):
        raise FrameRejected(f"expected {len(config.columns)} columns, got {len(cells)}")
    return {
        key: cell.strip()
        for key, cell in zip(config.columns, cells, strict=True)
        if key not in ("", "_")
    }


def _kv_record(frame: bytes, config: KvParse) -> dict[str, Any]:
    record: dict[str, Any] = {}
    separator = config.kv_separator
    for pair in _decode(frame, config.encoding).split(config.pair_separator):
        if not pair.strip():
            continue
        key, found, value = pair.partition(separator)
        if not found:
            raise FrameRejected(f"{pair.strip()[:40]!r} is not a key{separator}value pair")
        record[key.strip()] = value.strip()
    return record


def _regex_extractor(config: RegexParse) -> Callable[[bytes], dict[str, Any]]:
    compiled = re.compile(config.pattern)
    matcher = compiled.fullmatch if config.match == "full" else compiled.search

    def extract(frame: bytes) -> dict[str, Any]:
        found = matcher(_decode(frame, config.encoding))
        if found is None:
            raise FrameRejected("does not match the pattern")
        return {key: value for key, value in found.groupdict().items() if value is not None}

    return extract


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
    scale: float
    bias: float
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
        self._extract: Callable[[bytes], dict[str, Any]] | None = None
        self._outputs: list[_Output] = []
        self._struct: list[_StructOutput] = []
        self._timestamp: TimestampSpec | None = None
        if isinstance(config, StructParse):
            self._compile_struct(config)
        elif not isinstance(config, RawParse):
            self._compile_record(config)

    def _compile_record(self, config: JsonParse | CsvParse | KvParse | RegexParse) -> None:
        if isinstance(config, JsonParse):
            self._extract = lambda frame: _json_record(frame, config)
        elif isinstance(config, CsvParse):
            self._extract = lambda frame: _csv_record(frame, config)
        elif isinstance(config, KvParse):
            self._extract = lambda frame: _kv_record(frame, config)
        else:
            self._extract = _regex_extractor(config)
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
            self._struct.append(
                _StructOutput(
                    key,
                    spec.name or key,
                    layout.unpack_from,
                    spec.offset,
                    spec.offset + layout.size,
                    spec.scale,
                    spec.bias,
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
            if raw is None or isinstance(raw, dict | list):
                if out.required:
                    raise FrameRejected(f"required field '{out.key}' is missing")
                continue
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
            value: Scalar = raw
            if out.scale != 1.0 or out.bias != 0.0:
                value = raw * out.scale + out.bias
            found.append(Reading(out.name, value, out.unit, out.tags))
        return found

    def parse(self, frame: bytes, received: float) -> list[Event]:
        """Events for one frame, stamped ``received`` unless the frame carries a time.

        Raises ``FrameRejected`` when the frame cannot be parsed.
        """
        config = self.config
        if isinstance(config, RawParse):
            text = frame.hex() if config.encoding == "hex" else _decode(frame, config.encoding)
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
