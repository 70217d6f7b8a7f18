"""Routed events → the numbers the history keeps, and alarm markers.

Runs in the writer thread: the event loop only hands the routed batches over.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from tidegate.outgoing import Outgoing

ALARM_SUFFIX = "_alarm"
ALARM_STATES = {"raised": 1, "cleared": 0}
VERDICT_CACHE_LIMIT = 8192


@dataclass(slots=True)
class Batch:
    """Column lists of one flush: values by signal key, and alarm markers."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    units: dict[tuple[str, str], str | None] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    markers: list[tuple[str, str, float, int, float | None]] = field(default_factory=list)
    """(source, name, time, 1 raised / 0 cleared, threshold)."""


def _number(value: object) -> float | None:
    # bool is an int: a switch's True is not a reading to plot.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class SignalFilter:
    """``history.signals`` globs on ``source/name``, with the verdict cached per key."""

    def __init__(self, globs: Sequence[str]) -> None:
        self.globs = tuple(globs)
        self.every = self.globs == ("*",)
        self._verdicts: dict[tuple[str, str], bool] = {}

    def wanted(self, source: str, name: str) -> bool:
        if self.every:
            return True
        key = (source, name)
        verdict = self._verdicts.get(key)
        if verdict is None:
            full = f"{source}/{name}"
            verdict = any(fnmatchcase(full, glob) for glob in self.globs)
            if len(self._verdicts) >= VERDICT_CACHE_LIMIT:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict


def collect(items: Iterable[Outgoing], wanted: SignalFilter, batch: Batch) -> None:
    """Append the numeric values (a mapping's numeric keys as ``name.key``) and alarms."""
    keys, times, values, units = batch.keys, batch.times, batch.values, batch.units
    for item in items:
        event = item.event
        value = event.value
        source, name = event.source, event.name
        if isinstance(value, str):
            state = ALARM_STATES.get(value)
            if state is not None and name.endswith(ALARM_SUFFIX):
                tags = event.tags or {}
                threshold = _number_text(tags.get("threshold"))
                batch.markers.append((source, name, event.time, state, threshold))
            continue
        if isinstance(value, dict):
            for sub, inner in value.items():
                number = _number(inner)
                if number is not None and wanted.wanted(source, f"{name}.{sub}"):
                    key = (source, f"{name}.{sub}")
                    keys.append(key)
                    times.append(event.time)
                    values.append(number)
                    units[key] = event.unit
            continue
        number = _number(value)
        if number is None or not wanted.wanted(source, name):
            continue
        key = (source, name)
        keys.append(key)
        times.append(event.time)
        values.append(number)
        units[key] = event.unit


def _number_text(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
