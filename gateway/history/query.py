"""Reading the history file, read-only, for ``tidegate plot``.

A signal's series over a window is stitched from the finest data there is:
raw values where ``raw`` still has them, before that the finest tier's
buckets, before those the next tier's. Buckets are drawn at their middle with
their min and max as a band. Gaps — the sensor silent for longer than
``GAP_FACTOR`` of its usual interval (the median between raw values, a
bucket's width) — become NaN between the points, so lines break there and
nothing is interpolated across them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from tidegate.errors import TidegateError

GAP_FACTOR = 3.0


class NoHistory(TidegateError):
    """No history file, or nothing in it for a signal: exit 1."""


@dataclass(frozen=True, slots=True)
class Signal:
    id: int
    source: str
    name: str
    unit: str | None

    @property
    def label(self) -> str:
        return f"{self.source}/{self.name}"


@dataclass(frozen=True, slots=True)
class Series:
    signal: Signal
    t: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    gaps: list[tuple[float, float]]
    """(last value before, first value after) of each silence."""
    resolution: str
    """What the window is drawn from: ``raw``, ``1m buckets`` or a mix."""


@dataclass(frozen=True, slots=True)
class AlarmSpan:
    name: str
    start: float
    end: float
    open_ended: bool
    """Still raised at the window's end."""


def open_read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise NoHistory(f"no history at {path} (is `history:` in the gateway's configuration?)")
    try:
        db = sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True)
        db.execute("SELECT count(*) FROM signals").fetchone()
    except sqlite3.DatabaseError as exc:
        raise NoHistory(f"{path} is not a tidegate history file: {exc}") from None
    return db


def matching(db: sqlite3.Connection, pattern: str) -> list[Signal]:
    """Signals whose ``source/name`` is the pattern or matches it as a glob."""
    rows = db.execute("SELECT id, source, name, unit FROM signals ORDER BY source, name")
    signals = [Signal(*row) for row in rows]
    return [s for s in signals if s.label == pattern or fnmatchcase(s.label, pattern)]


def _label(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def read_series(db: sqlite3.Connection, signal: Signal, start: float, end: float) -> Series:
    parts: list[tuple[np.ndarray, ...]] = []
    used: list[str] = []
    raw = np.array(
        db.execute(
            "SELECT t, v FROM samples WHERE signal = ? AND t >= ? AND t <= ? ORDER BY t",
            (signal.id, start, end),
        ).fetchall(),
        dtype=np.float64,
    ).reshape(-1, 2)
    covered_from = end
    if len(raw):
        t, v = raw[:, 0], raw[:, 1]
        # One value alone has no usual interval: nothing around it counts as a gap.
        usual = float(np.median(np.diff(t))) if len(t) > 1 else float("inf")
        parts.append((t, v, v, v, np.full(len(t), usual)))
        covered_from = float(t[0])
        used.append("raw")
    for (every,) in db.execute("SELECT every FROM tiers ORDER BY every"):
        rows = np.array(
            db.execute(
                "SELECT t, n, vmin, vsum, vmax FROM rollups WHERE every = ? AND signal = ? "
                "AND t + every > ? AND t + every <= ? ORDER BY t",
                (every, signal.id, start, covered_from),
            ).fetchall(),
            dtype=np.float64,
        ).reshape(-1, 5)
        if len(rows):
            middle = rows[:, 0] + every / 2
            mean = rows[:, 3] / rows[:, 1]
            parts.insert(0, (middle, mean, rows[:, 2], rows[:, 4], np.full(len(rows), every)))
            covered_from = float(rows[0, 0])
            used.insert(0, f"{_label(every)} buckets")
    if not parts:
        empty = np.empty(0)
        return Series(signal, empty, empty, empty, empty, [], "")
    columns = [np.concatenate(column) for column in zip(*parts, strict=True)]
    t, mean, low, high = columns[:4]
    whole = Series(signal, t, mean, low, high, [], " + ".join(used))
    return _broken(whole, columns[4])


def _broken(series: Series, usual: np.ndarray) -> Series:
    """NaN between two values further apart than GAP_FACTOR of their usual interval."""
    t = series.t
    if len(t) < 2:
        return series
    gap = np.diff(t) > GAP_FACTOR * np.maximum(usual[1:], usual[:-1])
    at = np.flatnonzero(gap) + 1
    if not len(at):
        return series
    spans = [(float(t[i - 1]), float(t[i])) for i in at]
    middle = (t[at - 1] + t[at]) / 2

    def cut(values: np.ndarray, fill: np.ndarray | float) -> np.ndarray:
        return np.insert(values, at, fill)

    return Series(
        series.signal,
        cut(t, middle),
        cut(series.mean, np.nan),
        cut(series.low, np.nan),
        cut(series.high, np.nan),
        spans,
        series.resolution,
    )


def alarm_spans(
    db: sqlite3.Connection, signal: Signal, start: float, end: float
) -> list[AlarmSpan]:
    """The signal's alarms (``<name>_alarm`` of its source; else every alarm of the
    source, for a rule that names its alarm events) as raised → cleared spans."""
    base = signal.name.split(".")[0]
    names = [
        row[0]
        for row in db.execute(
            "SELECT DISTINCT name FROM markers WHERE source = ? AND name IN (?, ?)",
            (signal.source, f"{signal.name}_alarm", f"{base}_alarm"),
        )
    ] or [
        row[0]
        for row in db.execute(
            "SELECT DISTINCT name FROM markers WHERE source = ?", (signal.source,)
        )
    ]
    spans: list[AlarmSpan] = []
    for name in names:
        before = db.execute(
            "SELECT raised FROM markers WHERE source = ? AND name = ? AND t < ? "
            "ORDER BY t DESC LIMIT 1",
            (signal.source, name, start),
        ).fetchone()
        raised_at = start if before is not None and before[0] else None
        for t, raised in db.execute(
            "SELECT t, raised FROM markers WHERE source = ? AND name = ? AND t >= ? AND t <= ? "
            "ORDER BY t",
            (signal.source, name, start, end),
        ):
            if raised and raised_at is None:
                raised_at = t
            elif not raised and raised_at is not None:
                spans.append(AlarmSpan(name, raised_at, t, False))
                raised_at = None
        if raised_at is not None:
            spans.append(AlarmSpan(name, raised_at, end, True))
    return spans


def dropped_rows(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'dropped_rows'").fetchone()
    return int(row[0]) if row else 0
