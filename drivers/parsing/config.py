"""The ``parse:`` section's schema: one model per format, chosen by ``format``.

Kept apart from the parser itself (``parse``, which re-exports these), so that
checking a config imports no parser; the field descriptions are the reference.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, field_validator, model_validator

from tidegate.config.types import Duration, Name, Section
from tidegate.drivers.framing.checksums import ByteOrder
from tidegate.drivers.parsing.selection import SELECT_DESCRIPTION, Prefixes, prefixes_encode

FieldType: TypeAlias = Literal["number", "int", "bool", "string"]
WireType: TypeAlias = Literal["u8", "i8", "u16", "i16", "u32", "i32", "f32", "f64"]
Encoding: TypeAlias = Literal["utf-8", "ascii", "latin-1"]

_DECIMALS = (
    "round the value to this many decimal places, computed exactly from the decimal "
    "the device sent and rounded half to even (2.675 -> 2.68, 2.665 -> 2.66); an "
    "integer without scale and bias stays as it is. Default: the resolution the frame's "
    "value, `scale` and `bias` give (a raw 3 with `scale: 0.1` is 0.3, not "
    "0.30000000000000004); without scale and bias the value is left as it came."
)


class FieldSpec(Section):
    """How one named value of a text or JSON frame becomes an event."""

    name: Name | None = Field(None, description="Event name; default: the field's key.")
    type: FieldType = Field(
        "number",
        description="Convert to `number`, `int`, `bool` or `string`. A `number` without "
        "scale and bias keeps an integer an integer (exact), other numbers are floats; "
        "an integer beyond 64 bits is rejected, never rounded.",
    )
    unit: str | None = Field(None, max_length=32, description="Unit of the value, e.g. `°C`.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags for this field's events.")
    scale: float = Field(1.0, description="For `number`: value = raw * scale + bias.")
    bias: float = Field(0.0, description="For `number`: added after scaling.")
    decimals: int | None = Field(None, ge=0, le=15, description=f"For `number`: {_DECIMALS}")
    required: bool = Field(
        False, description="Reject the frame when this field is missing (else skip the field)."
    )

    @model_validator(mode="after")
    def _scaling_is_numeric(self) -> FieldSpec:
        if self.type != "number" and (
            self.scale != 1.0 or self.bias != 0.0 or self.decimals is not None
        ):
            raise ValueError("scale, bias and decimals apply to `type: number` fields only")
        return self


class StructField(Section):
    """One value at a fixed offset of a binary frame."""

    offset: int = Field(ge=0, le=65535, description="Byte offset in the frame (from byte 0).")
    type: WireType = Field(
        description="u8, i8, u16, i16, u32, i32, f32 or f64. An f32 is published as the "
        "shortest decimal that is the same float32 (21.3, not 21.299999237060547)."
    )
    byte_order: ByteOrder | None = Field(None, description="Override the parser's byte order.")
    name: Name | None = Field(None, description="Event name; default: the field's key.")
    unit: str | None = Field(None, max_length=32, description="Unit of the value.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags for this field's events.")
    scale: float = Field(1.0, description="value = raw * scale + bias (an int if both are unset).")
    bias: float = Field(0.0, description="Added after scaling.")
    decimals: int | None = Field(
        None, ge=0, le=15, description=_DECIMALS[0].upper() + _DECIMALS[1:]
    )


TimeFormat: TypeAlias = Literal["epoch_s", "epoch_ms", "rfc3339", "hhmmss"]
DateFormat: TypeAlias = Literal["ddmmyy", "yyyy-mm-dd"]


def _max_behind() -> Any:
    return Field(
        7 * 86400.0,
        ge=0,
        description="How far behind the gateway's clock the device time may be (a data "
        "logger uploading what it recorded offline is behind), e.g. `7d` (the default, "
        "604800 s), `12h`. Further behind is invalid.",
    )


def _max_ahead() -> Any:
    return Field(
        120.0,
        ge=0,
        description="How far ahead of the gateway's clock the device time may be (its "
        "clock drifting, or two clocks a little apart), e.g. `2m` (the default, 120 s). "
        "Further ahead is invalid. Right after boot, a gateway without a real-time clock "
        "(a Raspberry Pi) runs on a stale time until NTP syncs it: a correct device time "
        "then looks ahead, and the events get that stale clock (corrected when it steps).",
    )


def _on_invalid() -> Any:
    return Field(
        "clock",
        description="A device time that is missing, unparsable or outside the tolerance: "
        "`clock` stamps the events with the gateway's clock instead (counted as "
        "`clock_fallback`, logged once an hour per driver and reason); `reject` puts the "
        "frame in the dead letters with the reason.",
    )


OnInvalid: TypeAlias = Literal["clock", "reject"]

_OLD_FORMATS = {"unix": "epoch_s", "unix_ms": "epoch_ms", "iso8601": "rfc3339"}
"""The formats of the old ``timestamp:``, by their names under ``time_field:``."""


def _renamed_format(value: Any) -> Any:
    if isinstance(value, str) and value in _OLD_FORMATS:
        raise ValueError(f"`{value}` is now `{_OLD_FORMATS[value]}`")
    return value


class TimeFieldSpec(Section):
    """A field that carries the reading's own time, checked against the gateway's clock.

    Which time was used is counted per driver: `device_time`, or `clock_fallback`
    with the reason (`device_time_ahead`, `device_time_behind`,
    `device_time_missing`, `device_time_unparsable`), shown by `tidegate status`
    and the metrics; a fallback is logged once an hour per driver and reason.
    Events with the device's time carry `"time_source": "device"`.

    The tolerance is checked against the gateway's clock. Right after boot, a
    gateway without a real-time clock (a Raspberry Pi) runs on a stale time until
    NTP syncs it: a correct device time (a GPS's) then looks ahead and the events
    get that stale clock instead (they are corrected when the clock steps).
    A leap second (`23:59:60`) is read as `23:59:59.999`.
    """

    field: str = Field(
        min_length=1,
        description="Key of the field holding the time (csv: one of `columns`; regex: a "
        "named group; json: a dotted key such as `meta.ts` reaches into nested objects).",
    )
    format: TimeFormat = Field(
        "epoch_s",
        description="`epoch_s` / `epoch_ms`: seconds / milliseconds since 1970 (a number or "
        "its digits, fractions allowed); `rfc3339`: `2026-12-02T06:55:00.5Z` or with an offset "
        "(`+01:00`), the offset is required; `hhmmss`: a UTC time of day as NMEA sends "
        "it (`123519` or `123519.25`), on the date of `date_field`, or without one on the "
        "UTC date that puts it nearest to the gateway's clock (a fix at 23:59:59.9 read "
        "just after midnight is yesterday's). The old `timestamp:` formats `unix`, "
        "`unix_ms` and `iso8601` are now `epoch_s`, `epoch_ms` and `rfc3339`.",
    )
    date_field: str | None = Field(
        None,
        min_length=1,
        description="With `format: hhmmss`: key of the field holding the UTC date (csv: "
        "one of `columns`; regex: a named group).",
    )
    date_format: DateFormat | None = Field(
        None,
        description="Format of `date_field`: `ddmmyy` as NMEA RMC sends it (`021226`, "
        "years 2000-2099; the default) or `yyyy-mm-dd`.",
    )
    max_behind: Duration = _max_behind()
    max_ahead: Duration = _max_ahead()
    on_invalid: OnInvalid = _on_invalid()

    _old_format = field_validator("format", mode="before")(_renamed_format)

    @model_validator(mode="after")
    def _date_goes_with_hhmmss(self) -> TimeFieldSpec:
        if self.date_field is not None and self.format != "hhmmss":
            raise ValueError("`date_field` goes with `format: hhmmss` only")
        if self.date_format is not None and self.date_field is None:
            raise ValueError("`date_format` needs a `date_field`")
        if self.date_field == self.field:
            raise ValueError("`date_field` and `field` must be different fields")
        return self


class StructTimeField(Section):
    """A binary frame's own time: an unsigned integer since 1970 at a fixed offset."""

    offset: int = Field(ge=0, le=65535, description="Byte offset in the frame (from byte 0).")
    type: Literal["u32", "u64"] = Field(
        "u32", description="`u32` (seconds only) or `u64` (seconds or milliseconds)."
    )
    byte_order: ByteOrder | None = Field(None, description="Override the parser's byte order.")
    format: Literal["epoch_s", "epoch_ms"] = Field(
        "epoch_s", description="Seconds or milliseconds since 1970."
    )
    max_behind: Duration = _max_behind()
    max_ahead: Duration = _max_ahead()
    on_invalid: OnInvalid = _on_invalid()

    _old_format = field_validator("format", mode="before")(_renamed_format)

    @model_validator(mode="after")
    def _milliseconds_fit(self) -> StructTimeField:
        if self.type == "u32" and self.format == "epoch_ms":
            raise ValueError(
                "a u32 holds milliseconds since 1970 only until 1970-02-19: use `type: u64`"
            )
        return self


def time_keys(spec: TimeFieldSpec | None) -> set[str]:
    """The keys a record's ``time_field`` reads (not emitted as values)."""
    if spec is None:
        return set()
    return {spec.field} if spec.date_field is None else {spec.field, spec.date_field}


def _renamed_timestamp(data: Any) -> Any:
    if isinstance(data, dict) and "timestamp" in data:
        raise ValueError(
            "`timestamp:` is now `time_field:` (formats epoch_s, epoch_ms, rfc3339, hhmmss; "
            "checked against the gateway's clock)"
        )
    return data


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
    unlisted: Literal["ignore", "include", "reject"] = Field(
        "ignore",
        description="What to do with keys not in `fields`: drop them, emit them with an "
        "automatic type (bool for true/false, number when numeric, else string), or "
        "`reject` the record (`kv` and `json`: for a device that always sends the same "
        "keys, an unknown key is a damaged record).",
    )
    time_field: TimeFieldSpec | None = Field(
        None,
        description="Take the event time from a field of the frame instead of the arrival "
        "time, within a tolerance of the gateway's clock.",
    )
    encoding: Encoding = Field("utf-8", description="Text encoding of the frame.")
    select: Prefixes | None = Field(None, description=SELECT_DESCRIPTION)
    _select_encodes = field_validator("select")(prefixes_encode)

    @model_validator(mode="before")
    @classmethod
    def _no_timestamp(cls, data: Any) -> Any:
        return _renamed_timestamp(data)

    @model_validator(mode="after")
    def _something_to_emit(self) -> _RecordParse:
        if not self.fields and self.unlisted != "include":
            raise ValueError("list `fields`, or set `unlisted: include`, or nothing is emitted")
        return self


def _time_keys_among(config: _RecordParse, keys: list[str], where: str) -> None:
    """Refuse a time or date field the record can never hold (every frame would fall back)."""
    spec = config.time_field
    if spec is None:
        return
    for what, key in (("time_field", spec.field), ("date_field", spec.date_field)):
        if key is not None and key not in keys:
            raise ValueError(f"{what} '{key}' is not in {where} {keys}")


def _no_unlisted_reject(config: _RecordParse, why: str) -> None:
    if config.unlisted == "reject":
        raise ValueError(f"`unlisted: reject` is for kv and json: {why}")


class JsonParse(_RecordParse):
    """One JSON object per frame: ``{"t": 21.5, "h": 40}``."""

    format: Literal["json"] = Field("json", description="Frames are JSON objects.")
    # A dotted key (`env.t`) reaches into nested objects.


class CsvParse(_RecordParse):
    """Delimited values in fixed column order: ``21.5,40``. No quoting."""

    format: Literal["csv"] = Field("csv", description="Frames are delimited columns.")
    columns: list[str] = Field(
        min_length=1,
        description='Column keys in order; "" or "_" skips a column. A record with another '
        "number of columns is rejected.",
    )
    delimiter: str = Field(",", min_length=1, description="Column separator.")

    @model_validator(mode="after")
    def _fields_are_columns(self) -> CsvParse:
        unknown = [key for key in self.fields if key not in self.columns]
        if unknown:
            raise ValueError(f"fields {unknown} are not in `columns`")
        _time_keys_among(self, self.columns, "`columns`")
        _no_unlisted_reject(self, "`columns` already fixes a csv record's keys")
        return self


class KvParse(_RecordParse):
    """Key/value pairs: ``T=21.5,H=40``.

    A record with a repeated key, a key without a value, a pair without the key/value
    separator or a value holding that separator (``c=1a=3``: two records run
    together) is rejected.
    """

    format: Literal["kv"] = Field("kv", description="Frames are key=value pairs.")
    pair_separator: str = Field(",", min_length=1, description="Between pairs.")
    kv_separator: str = Field("=", min_length=1, description="Between a key and its value.")


class RegexParse(_RecordParse):
    """A regular expression whose named groups are the fields."""

    format: Literal["regex"] = Field("regex", description="Fields are a regex's named groups.")
    pattern: str = Field(
        description="Python regular expression with `(?P<key>...)` groups. A group that "
        "matched nothing (empty) rejects the record; one that did not take part counts "
        "as a missing field."
    )
    match: Literal["search", "full"] = Field(
        "search",
        description="`search`: the pattern may match anywhere in the frame, once (a "
        "second match means two records run together and rejects the frame); `full`: "
        "it must match the whole frame, which also catches a record cut short and "
        "followed by noise: the safer choice for serial lines without a checksum.",
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

    @model_validator(mode="after")
    def _groups_are_fixed(self) -> RegexParse:
        _no_unlisted_reject(self, "the pattern already fixes a regex record's keys")
        _time_keys_among(self, list(re.compile(self.pattern).groupindex), "the pattern's groups")
        return self


class StructParse(_ParseBase):
    """Binary values at fixed offsets, e.g. a sensor datasheet's frame layout."""

    format: Literal["struct"] = Field("struct", description="Frames are binary records.")
    byte_order: ByteOrder = Field("big", description="Default byte order of the fields.")
    fields: dict[str, StructField] = Field(min_length=1, description="The values, by key.")
    time_field: StructTimeField | None = Field(
        None,
        description="Take the event time from the frame (an integer since 1970 at an "
        "offset) instead of the arrival time, within a tolerance of the gateway's clock.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_timestamp(cls, data: Any) -> Any:
        return _renamed_timestamp(data)


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
