"""Device time: the time a frame carries, read, checked against the gateway's clock,
and counted.

A GPS receiver, a data logger or a meter with a clock says when it measured; the
``time_field:`` of a ``parse:`` section names the field. Its value is read in its
format (``epoch_s``, ``epoch_ms``, ``rfc3339``, ``hhmmss`` with or without a date
field), then compared with the gateway's clock at the frame's arrival, which the
driver passes in (``received``): tests give any clock they like, nothing here reads
the wall clock. A time more than ``max_ahead`` ahead of it or ``max_behind`` behind
it, one that cannot be read, or a missing one is invalid: the events get the
gateway's clock instead (``on_invalid: clock``) or the frame is rejected
(``on_invalid: reject``). Events that got the device's time say so
(``time_source="device"``).

The check trusts the gateway's clock. Right after boot, a gateway without a
real-time clock (a Raspberry Pi) runs on a stale time until NTP syncs it: a
correct device time (a GPS's) then looks ahead and is replaced by that stale
clock (those events are corrected when the clock steps, see ``outbox.clock``), and
a device time that happens to lie within the tolerance of the stale clock is used.

A leap second (``23:59:60``, RFC 3339 and NMEA allow it) is read as
``23:59:59.999``: the times stay in order and need no leap-second table.

Every choice is counted through ``TimeReport`` (the driver's ``health.tally``):
``device_time`` when the device's time was used, ``clock_fallback`` when the
gateway's was, and the reason as ``device_time_ahead`` / ``_behind`` /
``_missing`` / ``_unparsable`` in both modes. A fallback is logged once an hour
per driver and problem (``ahead``, ``behind``, ``missing``, ``unparsable``), through
the log's rate limiter (``tidegate.ops.log_limit``); the counters tell the rest.
A device clock that goes wrong a week after the start is logged then.

```yaml
- format: json                        # {"t": 21.5, "ts": 1796194500123}
  fields: {t: {name: temperature}}
  time_field: {field: ts, format: epoch_ms, max_behind: 1d, max_ahead: 30s}
- format: csv                         # "123519.00,021226,4807.038": GPS time, date
  columns: [utc, date, lat]
  fields: {lat: {}}
  time_field: {field: utc, format: hhmmss, date_field: date, on_invalid: reject}
```
"""

from __future__ import annotations

import functools
import logging
import math
import re
import struct
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeAlias

from tidegate.drivers.parsing.config import StructTimeField, TimeFieldSpec
from tidegate.drivers.parsing.records import FrameRejected
from tidegate.ops.log_limit import RepeatLimiter

log = logging.getLogger("tidegate.drivers.parsing")

Problem: TypeAlias = Literal["ahead", "behind", "missing", "unparsable"]

DAY = 86400.0

# [0-9], not \d: \d also matches other scripts' digits, which int() would read.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_HHMMSS = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})(\.[0-9]{1,9})?")
_DDMMYY = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
"""An epoch as text: digits with an optional fraction (not 1_000, 1e9, nan or inf)."""
LEAP = 0.999
"""A leap second (``:60``) is read as this much into second 59."""
_NEAR = 366 * 86400.0
"""A time in the wrong epoch unit is off by years; in the right one, within a year."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Unusable(Exception):
    """A device time that cannot be used: ``problem`` says which counter, the message why."""

    def __init__(self, problem: Problem, reason: str) -> None:
        super().__init__(reason)
        self.problem = problem


def _shown(raw: Any) -> str:
    return repr(raw[:40] if isinstance(raw, str) else raw)


# --- reading the formats ----------------------------------------------------------------


def epoch_seconds(raw: Any, key: str, *, millis: bool) -> float:
    """A number (or numeric text) of seconds or milliseconds since 1970, as seconds."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise Unusable("unparsable", f"time field '{key}': {_shown(raw)} is not a number")
    if isinstance(raw, str) and _DECIMAL.fullmatch(raw.strip()) is None:
        raise Unusable("unparsable", f"time field '{key}': {_shown(raw)} is not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise Unusable("unparsable", f"time field '{key}': {_shown(raw)} is not a finite number")
    return value / 1000.0 if millis else value


def rfc3339(raw: Any, key: str) -> float:
    """An RFC 3339 time (``2026-12-02T06:55:00.25Z``, ``...+01:00``) in seconds since 1970."""
    text = raw.strip() if isinstance(raw, str) else None
    found = _RFC3339.fullmatch(text) if text is not None else None
    if found is None:
        local = text is not None and _RFC3339.fullmatch(text + "Z") is not None
        why = "has no UTC offset" if local else "is not an RFC 3339 time"
        raise Unusable("unparsable", f"time field '{key}': {_shown(raw)} {why}")
    assert text is not None
    leap = found[6] == "60"
    if leap:  # 23:59:60(.5) is read as 23:59:59 + LEAP (the standard library has no :60)
        text = text[: found.start(6)] + "59" + text[found.end(7 if found[7] else 6) :]
    try:
        # The pattern made sure it is RFC 3339 with an offset; the standard library's
        # reader (several times faster than building the datetime here) checks the
        # calendar and takes the upper case it wants.
        moment = datetime.fromisoformat(text.upper()).timestamp()
    except ValueError as exc:  # 2026-02-30, 25:00, an offset of 24 hours or more
        raise Unusable("unparsable", f"time field '{key}': {_shown(raw)}: {exc}") from None
    return moment + LEAP if leap else moment


def _digits(raw: Any, width: int) -> str | None:
    """Text of a time or date as sent: a JSON number lost its leading zeros (93000 is
    09:30:00), so an integer part is padded back to ``width`` digits."""
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    if isinstance(raw, float):
        if not math.isfinite(raw) or raw < 0:
            return None
        whole, _, fraction = repr(raw).partition(".")
        return whole.zfill(width) + ("" if fraction in ("", "0") else "." + fraction)
    return str(raw).zfill(width) if raw >= 0 else None


def time_of_day(raw: Any, key: str) -> float:
    """NMEA's ``hhmmss`` / ``hhmmss.ss`` (UTC) in seconds since midnight."""
    text = _digits(raw, 6)
    found = _HHMMSS.fullmatch(text) if text is not None else None
    if found is None:
        raise Unusable("unparsable", f"time field '{key}': {_shown(raw)} is not hhmmss(.ss)")
    hours, minutes, seconds = int(found[1]), int(found[2]), int(found[3])
    if hours > 23 or minutes > 59 or seconds > 60:
        raise Unusable("unparsable", f"time field '{key}': {_shown(raw)} is not a time of day")
    if seconds == 60:  # a leap second: 59 + LEAP, as for RFC 3339
        return hours * 3600.0 + minutes * 60.0 + 59 + LEAP
    return hours * 3600.0 + minutes * 60.0 + seconds + (float(found[4]) if found[4] else 0.0)


def day_start(raw: Any, key: str, date_format: str) -> float:
    """A UTC date (``ddmmyy`` as NMEA RMC sends it, or ``yyyy-mm-dd``) as the seconds
    since 1970 of its midnight."""
    text = _digits(raw, 6) if date_format == "ddmmyy" else raw
    if isinstance(text, str):
        # A device sends the same date all day: remembered, it costs a lookup.
        return _midnight(text.strip(), key, date_format)
    raise Unusable("unparsable", f"date field '{key}': {_shown(raw)} is not {date_format}")


@functools.lru_cache(maxsize=16)
def _midnight(text: str, key: str, date_format: str) -> float:
    pattern = _DDMMYY if date_format == "ddmmyy" else _ISO_DATE
    found = pattern.fullmatch(text)
    if found is None:
        raise Unusable("unparsable", f"date field '{key}': {_shown(text)} is not {date_format}")
    if date_format == "ddmmyy":
        # NMEA has two-digit years; a receiver in use today reports 2000-2099.
        day, month, year = int(found[1]), int(found[2]), 2000 + int(found[3])
    else:
        year, month, day = int(found[1]), int(found[2]), int(found[3])
    try:
        midnight = date(year, month, day)
    except ValueError as exc:
        raise Unusable("unparsable", f"date field '{key}': {_shown(text)}: {exc}") from None
    return (midnight - _EPOCH.date()).days * DAY


def nearest_day(seconds_of_day: float, reference: float) -> float:
    """The moment at ``seconds_of_day`` (UTC) nearest to ``reference``: on the day
    before, of or after ``reference``'s UTC date (a fix at 23:59:59.9 read at
    00:00:01 is yesterday's)."""
    moment = math.floor(reference / DAY) * DAY + seconds_of_day
    if moment - reference > DAY / 2:
        return moment - DAY
    if reference - moment > DAY / 2:
        return moment + DAY
    return moment


def device_time(spec: TimeFieldSpec, key: str, now: float) -> str | int | float:
    """What a device with a good clock sends in field ``key`` (the time field or its
    date field) at ``now``: for simulated devices."""
    moment = datetime.fromtimestamp(now, UTC)
    if key == spec.date_field:
        return moment.strftime("%Y-%m-%d" if spec.date_format == "yyyy-mm-dd" else "%d%m%y")
    if spec.format == "epoch_s":
        return round(now, 3)
    if spec.format == "epoch_ms":
        return int(now * 1000)
    if spec.format == "rfc3339":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%H%M%S.") + f"{moment.microsecond // 10000:02d}"


# --- checking and counting --------------------------------------------------------------


class TimeReport:
    """Counts, for one driver, which clock its events got; logs its fallbacks, once an
    hour per problem.

    One per driver, shared by all its parsers (the mqtt driver has one per source), so
    that a log line comes once per driver and problem, not once per frame or per source.
    The lines go through a ``RepeatLimiter`` of its own (one line per ``per`` seconds of
    each kind; the next line says how many were left out), then through the log's own.
    """

    def __init__(
        self,
        driver: str,
        tally: Callable[[str], None] | None = None,
        *,
        per: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.driver = driver
        self._tally = tally if tally is not None else (lambda counter: None)
        self._gate = RepeatLimiter(burst=1, per=per, clock=clock)
        self._gate.handler = _ToLog()  # where it writes "N more lines like ..."

    def used(self) -> None:
        self._tally("device_time")

    def invalid(self, problem: Problem, reason: str, *, fallback: bool) -> None:
        self._tally(f"device_time_{problem}")
        if not fallback:
            return  # the frame goes to the dead letters, with the reason
        self._tally("clock_fallback")
        if not log.isEnabledFor(logging.WARNING):
            return
        # The limiter tells kinds apart by the text arguments: the driver and the problem.
        # The reason (its numbers change every frame) is part of the message instead.
        message = (
            "%s: " + reason.replace("%", "%%") + "; using the gateway's clock (counted as "
            "clock_fallback and device_time_%s)"
        )
        path, line, function, _ = log.findCaller()
        record = log.makeRecord(
            log.name, logging.WARNING, path, line, message, (self.driver, problem), None,
            function,
        )
        if self._gate.filter(record):
            log.handle(record)


class _ToLog(logging.Handler):
    """Writes the limiter's summaries to this module's log (and its handlers)."""

    def emit(self, record: logging.LogRecord) -> None:
        log.handle(record)


def _describe(seconds: float) -> str:
    if seconds >= 2 * DAY:
        return f"{seconds / DAY:.1f} d"
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.3f} s"


def _limit(seconds: float) -> str:
    """A configured tolerance, as a user would write it: 30 s, 2.0 min, 7.0 d."""
    return _describe(seconds) if seconds >= 120 else f"{seconds:g} s"


class DeviceClock:
    """The event time of each frame of one parser, as its ``time_field`` says."""

    def __init__(
        self, spec: TimeFieldSpec | StructTimeField, report: TimeReport, byte_order: str = "big"
    ) -> None:
        self.spec = spec
        self.report = report
        self._read: Callable[[Any, float], float]
        if isinstance(spec, TimeFieldSpec):
            self._read = self._from_record
        else:
            order = ">" if (spec.byte_order or byte_order) == "big" else "<"
            self._layout = struct.Struct(order + ("I" if spec.type == "u32" else "Q"))
            self._read = self._from_frame

    def _from_record(self, record: Mapping[str, Any], received: float) -> float:
        spec = self.spec
        assert isinstance(spec, TimeFieldSpec)
        raw = record.get(spec.field)
        if raw is None:
            raise Unusable("missing", f"time field '{spec.field}' is missing")
        if spec.format in ("epoch_s", "epoch_ms"):
            return epoch_seconds(raw, spec.field, millis=spec.format == "epoch_ms")
        if spec.format == "rfc3339":
            return rfc3339(raw, spec.field)
        seconds = time_of_day(raw, spec.field)
        if spec.date_field is None:
            return nearest_day(seconds, received)
        raw_date = record.get(spec.date_field)
        if raw_date is None:
            raise Unusable("missing", f"date field '{spec.date_field}' is missing")
        return day_start(raw_date, spec.date_field, spec.date_format or "ddmmyy") + seconds

    def _from_frame(self, frame: bytes, received: float) -> float:
        spec = self.spec
        layout = self._layout
        end = spec.offset + layout.size if isinstance(spec, StructTimeField) else 0
        if end > len(frame):
            # A short frame is a damaged one: rejected whatever on_invalid says, as a
            # value field beyond its end would be.
            raise FrameRejected(
                f"frame of {len(frame)} bytes is too short for the time field "
                f"(bytes {end - layout.size}..{end - 1})"
            )
        raw: int = layout.unpack_from(frame, end - layout.size)[0]
        return raw / 1000.0 if spec.format == "epoch_ms" else float(raw)

    def checked(self, moment: float, received: float) -> float:
        """``moment`` if it is within the tolerance of ``received``; raises ``Unusable``.
        A time exactly at a limit is within it."""
        spec = self.spec
        ahead = moment - received
        if ahead > spec.max_ahead:
            raise Unusable(
                "ahead",
                f"device time is {_describe(ahead)} ahead of the gateway's clock "
                f"(max_ahead {_limit(spec.max_ahead)}{self._unit_hint(moment, received)})",
            )
        if -ahead > spec.max_behind:
            raise Unusable(
                "behind",
                f"device time is {_describe(-ahead)} behind the gateway's clock "
                f"(max_behind {_limit(spec.max_behind)}{self._unit_hint(moment, received)})",
            )
        return moment

    def _unit_hint(self, moment: float, received: float) -> str:
        """A hint when the time is right in the other epoch unit (ms read as s, or s as ms)."""
        spec = self.spec
        if spec.format == "epoch_s" and abs(moment / 1000 - received) < _NEAR:
            return "; milliseconds? use `format: epoch_ms`"
        if spec.format == "epoch_ms" and abs(moment * 1000 - received) < _NEAR:
            return "; seconds? use `format: epoch_s`"
        return ""

    def event_time(self, source: Mapping[str, Any] | bytes, received: float) -> float | None:
        """The device's time for the events of a frame (a record's raw values, or a
        binary frame), checked; None when they get the gateway's clock (``received``)
        instead. Raises ``FrameRejected`` with ``on_invalid: reject``.

        None rather than ``received``: the events must say whose clock they carry,
        because a later step of the gateway's clock corrects only the gateway's times.
        """
        try:
            moment = self.checked(self._read(source, received), received)
        except Unusable as exc:
            fallback = self.spec.on_invalid == "clock"
            self.report.invalid(exc.problem, str(exc), fallback=fallback)
            if not fallback:
                raise FrameRejected(str(exc)) from None
            return None
        self.report.used()
        return moment
