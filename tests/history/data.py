"""A day of known history written through the store, for the plot tests and a look."""

from __future__ import annotations

import math
from pathlib import Path

from tidegate.history.samples import Batch
from tidegate.history.store import HistoryStore, Tier

DAY = 86400.0
STEP = 10.0
FLUSH = 600.0
SILENT = (9 * 3600.0, 11 * 3600.0)
"""Seconds into the day when the greenhouse sensor says nothing."""
HOT = (14 * 3600.0, 15.5 * 3600.0)
"""The alarm's raised span, seconds into the day."""


def temperature(offset: float) -> float:
    return 21 + 6 * math.sin((offset / DAY - 0.3) * 2 * math.pi) + 0.4 * math.sin(offset / 300)


def write_day(path: Path, end: float) -> HistoryStore:
    """24 h ending at ``end``: greenhouse/temperature (°C, every 10 s, silent 2 h,
    one alarm) and workshop/power (W, every 30 s); flushed every 10 minutes."""
    store = HistoryStore(path, 6 * 3600.0, [Tier(60, DAY), Tier(900, 30 * DAY)], 64_000_000)
    store.open()
    start = end - DAY
    batch = Batch()
    offset = 0.0
    while offset < DAY:
        t = start + offset
        if not SILENT[0] <= offset < SILENT[1]:
            batch.keys.append(("greenhouse", "temperature"))
            batch.times.append(t)
            batch.values.append(temperature(offset))
            batch.units[("greenhouse", "temperature")] = "°C"
        if offset % 30 == 0:
            batch.keys.append(("workshop", "power"))
            batch.times.append(t)
            batch.values.append(400 + 300 * (int(offset // 3600) % 3 == 0) + offset % 90)
            batch.units[("workshop", "power")] = "W"
        for at, state in ((HOT[0], 1), (HOT[1], 0)):
            if offset == at:
                batch.markers.append(("greenhouse", "temperature_alarm", t, state, 26.0))
        offset += STEP
        if offset % FLUSH == 0:
            store.write(batch, start + offset)
            batch = Batch()
    store.write(batch, end)
    return store
