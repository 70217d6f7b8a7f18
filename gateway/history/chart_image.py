"""A PNG or SVG chart with matplotlib (imported here only: ``tidegate plot -o``).

One panel per unit, sharing the time axis (local time, labelled with the
zone): each signal's line (broken at gaps: the values there are NaN), the
min-max band of downsampled buckets, alarms as shaded spans, and a legend.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # no display on a gateway; before pyplot is imported
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from tidegate.history.query import AlarmSpan, Series

ALARM_COLOUR = "#d62728"


def _times(t: np.ndarray, zone: dt.tzinfo) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(value, zone) for value in t.tolist()]


def draw(
    series: list[Series],
    alarms: dict[str, list[AlarmSpan]],
    start: float,
    end: float,
    out: Path,
) -> None:
    zone = dt.datetime.now().astimezone().tzinfo or dt.UTC
    units = list(dict.fromkeys(s.signal.unit or "" for s in series))
    fig, axes = plt.subplots(
        len(units), 1, sharex=True, figsize=(11, 2.2 + 2.6 * len(units)), squeeze=False
    )
    shaded: set[tuple[float, float]] = set()
    for ax, unit in zip(axes[:, 0], units, strict=True):
        for one in (s for s in series if (s.signal.unit or "") == unit):
            when = _times(one.t, zone)
            (line,) = ax.plot(when, one.mean, linewidth=1.4, label=one.signal.label)
            if np.any(one.low != one.high):
                ax.fill_between(
                    when, one.low, one.high, color=line.get_color(), alpha=0.18, linewidth=0
                )
            for index, (before, after) in enumerate(one.gaps):
                ax.axvspan(
                    *_times(np.array([before, after]), zone),
                    color="0.5",
                    alpha=0.08,
                    label=f"{one.signal.label}: no data" if index == 0 else None,
                )
            for span in alarms.get(one.signal.label, []):
                key = (span.start, span.end)
                label = None if shaded else "alarm raised"
                shaded.add(key)
                ax.axvspan(
                    *_times(np.array(key), zone), color=ALARM_COLOUR, alpha=0.12, label=label
                )
        ax.set_ylabel(unit or "value")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize="small", framealpha=0.85)
    bottom = axes[-1, 0]
    bottom.set_xlim(*_times(np.array([start, end]), zone))
    locator = mdates.AutoDateLocator(tz=zone)  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=zone))  # type: ignore[no-untyped-call]
    bottom.set_xlabel(f"local time ({dt.datetime.now(zone).strftime('%Z, UTC%z')})")
    gaps = sum(len(s.gaps) for s in series)
    resolution = "; ".join(dict.fromkeys(s.resolution for s in series if s.resolution))
    span_text = dt.datetime.fromtimestamp(start, zone).strftime("%Y-%m-%d %H:%M")
    title = f"{span_text} → {dt.datetime.fromtimestamp(end, zone).strftime('%Y-%m-%d %H:%M')}"
    fig.suptitle(f"{title}   ({resolution}; {gaps} gap(s) shown as breaks)", fontsize="medium")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
