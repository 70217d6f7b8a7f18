"""What `tidegate top` remembers between status documents: rates and trends.

The status document is a snapshot of totals; a dashboard wants rates and
recent history. ``Tracker.observe`` takes successive documents and keeps, per
driver, its events per second (the difference of its ``events`` over the
difference of the gateway's ``uptime_s``: the gateway's own clock, so a slow
poll does not skew a rate) and a ring of recent rates; the outbox depth and
each uplink's waiting count as rings; and, from the event stream
(``Tracker.event``, fed by a `tidegate tail`-like stream), each signal's last
value and a ring of its values sampled once per document. Pure data: no
curses, no sockets, so it is unit-tested with made-up documents.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HISTORY = 60
"""Samples each ring keeps: 30 s at two documents a second, more than 80 columns need."""

Document = dict[str, Any]


def numeric(value: Any) -> float | None:
    """A plottable number from an event's value (bools count as 0/1), else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


@dataclass(slots=True)
class SignalTrack:
    """One signal (source/name) as seen on the event stream."""

    source: str
    name: str
    value: Any = None
    unit: str | None = None
    seen: int = 0
    fresh: bool = False
    """An event arrived since the last sample: only then is a value sampled, so a
    silent signal's sparkline stops instead of repeating its last value."""
    values: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))


@dataclass(slots=True)
class Tracker:
    """The dashboard's memory: the latest document and the rings derived from it."""

    doc: Document | None = None
    driver_rates: dict[str, float] = field(default_factory=dict)
    driver_trend: dict[str, deque[float]] = field(default_factory=dict)
    depth_trend: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    waiting_trend: dict[str, deque[float]] = field(default_factory=dict)
    signals: dict[tuple[str, str], SignalTrack] = field(default_factory=dict)
    recall: Callable[[str, str], list[float]] = lambda source, name: []
    """A signal's recent values from before top started (the gateway's history file,
    when it keeps one), so a sparkline does not start empty after a restart."""
    stream_note: str | None = None
    """Why values are missing (the event stream ended or skipped events), if they are."""
    stream_skipped: int = 0
    error: str | None = None
    """Why the last poll failed (the gateway stopped); the last document stays shown."""

    def observe(self, doc: Document) -> None:
        """A new status document: rates from the previous one, one sample per ring."""
        previous = self.doc
        if previous is not None and (
            previous.get("pid") != doc.get("pid")
            or _num(doc.get("uptime_s")) < _num(previous.get("uptime_s"))
        ):
            # Another gateway process: its totals start again, so do the rates.
            self.driver_rates.clear()
            self.driver_trend.clear()
            self.depth_trend.clear()
            self.waiting_trend.clear()
            previous = None
        self.error = None
        elapsed = (
            0.0 if previous is None else _num(doc.get("uptime_s")) - _num(previous.get("uptime_s"))
        )
        before = (
            {}
            if previous is None
            else {d["name"]: d for d in previous.get("drivers", []) if isinstance(d, dict)}
        )
        for driver in doc.get("drivers", []):
            name = str(driver.get("name"))
            old = before.get(name)
            if old is None or elapsed <= 0:
                continue
            rate = max(0.0, (_num(driver.get("events")) - _num(old.get("events"))) / elapsed)
            self.driver_rates[name] = rate
            self.driver_trend.setdefault(name, deque(maxlen=HISTORY)).append(rate)
        outbox = doc.get("outbox") or {}
        self.depth_trend.append(_num(outbox.get("depth")))
        for uplink in doc.get("uplinks", []):
            if uplink.get("waiting") is not None:
                ring = self.waiting_trend.setdefault(str(uplink["name"]), deque(maxlen=HISTORY))
                ring.append(_num(uplink["waiting"]))
        for track in self.signals.values():
            number = numeric(track.value)
            if track.fresh and number is not None:
                track.values.append(number)
            track.fresh = False
        self.doc = doc

    def event(self, event: Document) -> None:
        """One event from the stream: the signal's last value."""
        key = (str(event.get("source")), str(event.get("name")))
        track = self.signals.get(key)
        if track is None:
            track = self.signals[key] = SignalTrack(*key)
            track.values.extend(self.recall(*key))
        track.value = event.get("value")
        track.unit = event.get("unit")
        track.seen += 1
        track.fresh = True

    def failed(self, why: str) -> None:
        self.error = why


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
