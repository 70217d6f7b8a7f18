"""A chart in the terminal: braille dots (2x4 per character cell), no dependency.

One panel per signal, as wide as the terminal: the y axis labelled with the
value range and unit, local times under the x axis, the line broken at gaps
(nothing is drawn across a silence), and a row under the panel marking the
time an alarm was raised.
"""

from __future__ import annotations

import math
import time

import numpy as np

from tidegate.history.query import AlarmSpan, Series

BRAILLE = 0x2800
# Dot bits of a braille cell by (column, row) within its 2x4 grid.
DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
LABEL_WIDTH = 10
MIN_WIDTH = 30


def _number(value: float) -> str:
    return f"{value:.4g}"


def local_time(t: float, span: float) -> str:
    # Over half a day the same clock time comes twice: the day is named too.
    return time.strftime("%H:%M" if span < 43200 else "%a %d %H:%M", time.localtime(t))


def _time_axis(start: float, end: float, cells: int) -> str:
    """Local times at the start, the middle and the end (the middle when it fits)."""
    span = end - start
    first, middle, last = (local_time(t, span) for t in (start, (start + end) / 2, end))
    axis = [" "] * cells
    for at, text in (
        (0, first),
        (cells // 2 - len(middle) // 2, middle),
        (cells - len(last), last),
    ):
        if all(c == " " for c in axis[max(0, at - 1) : at + len(text) + 1]):
            axis[at : at + len(text)] = text
    return "".join(axis).rstrip()


class Canvas:
    def __init__(self, cells_wide: int, cells_high: int) -> None:
        self.cells_wide, self.cells_high = cells_wide, cells_high
        self.bits = [[0] * cells_wide for _ in range(cells_high)]

    def dot(self, x: int, y: int) -> None:
        """Pixel (x, y), y counted from the bottom."""
        row = self.cells_high * 4 - 1 - y
        if 0 <= x < self.cells_wide * 2 and 0 <= row < self.cells_high * 4:
            self.bits[row // 4][x // 2] |= DOTS[x % 2][row % 4]

    def line(self, x0: int, y0: int, x1: int, y1: int) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps))

    def rows(self) -> list[str]:
        return ["".join(chr(BRAILLE + b) if b else " " for b in row) for row in self.bits]


def panel(
    series: Series, alarms: list[AlarmSpan], start: float, end: float, *, width: int, height: int
) -> list[str]:
    width = max(width, MIN_WIDTH)
    cells = width - LABEL_WIDTH - 1
    unit = series.signal.unit or ""
    finite = series.mean[np.isfinite(series.mean)]
    low, high = float(finite.min()), float(finite.max())
    if math.isclose(low, high):
        low, high = low - 1, high + 1
    canvas = Canvas(cells, height)
    px_wide, px_high = cells * 2 - 1, height * 4 - 1
    x = np.round((series.t - start) / (end - start) * px_wide)
    y = np.round((series.mean - low) / (high - low) * px_high)
    previous: tuple[int, int] | None = None
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        if math.isnan(yi):
            previous = None  # a gap: the next value starts a new line
            continue
        point = (int(xi), int(yi))
        if previous is None:
            canvas.dot(*point)
        else:
            canvas.line(*previous, *point)
        previous = point
    title = f"{series.signal.label}" + (f" ({unit})" if unit else "")
    note = f"{series.resolution}; {len(series.gaps)} gap(s)" if series.gaps else series.resolution
    lines = [f"{title}  min {_number(low)} max {_number(high)}  [{note}]"]
    labels = {0: _number(high), height - 1: _number(low), (height - 1) // 2: unit}
    for index, row in enumerate(canvas.rows()):
        lines.append(f"{labels.get(index, ''):>{LABEL_WIDTH}}│{row}")
    if alarms:
        marks = [" "] * cells
        for span in alarms:
            a = int((span.start - start) / (end - start) * (cells - 1))
            b = int((span.end - start) / (end - start) * (cells - 1))
            for column in range(max(a, 0), min(b, cells - 1) + 1):
                marks[column] = "▀"
        lines.append(f"{'alarm':>{LABEL_WIDTH}}│{''.join(marks)}")
    lines.append(" " * LABEL_WIDTH + "└" + "─" * cells)
    lines.append(" " * (LABEL_WIDTH + 1) + _time_axis(start, end, cells))
    return lines
