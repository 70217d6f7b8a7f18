"""The history store: exact buckets, tiers' retention, the byte bound, one transaction a write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tidegate.event import Event
from tidegate.history.samples import Batch, SignalFilter, collect
from tidegate.history.store import HistoryStore, Tier
from tidegate.outgoing import Outgoing

BASE = 1_699_999_200.0  # a multiple of 60 and of 900: buckets start here


def batch_of(source: str, name: str, times: list[float], values: list[float]) -> Batch:
    batch = Batch()
    batch.keys = [(source, name)] * len(times)
    batch.times = list(times)
    batch.values = list(values)
    batch.units[(source, name)] = "°C"
    return batch


def opened(tmp_path: Path, raw: float = 3600, max_bytes: int = 64_000_000) -> HistoryStore:
    store = HistoryStore(
        tmp_path / "history.db", raw, [Tier(60, 86400), Tier(900, 30 * 86400)], max_bytes
    )
    store.open()
    return store


def buckets(store: HistoryStore, every: float) -> list[tuple[float, int, float, float, float]]:
    rows = store.db.execute(
        "SELECT t, n, vmin, vsum / n, vmax FROM rollups WHERE every = ? ORDER BY t", (every,)
    )
    return [tuple(row) for row in rows]


def test_buckets_are_exact_across_flushes_that_split_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    times = BASE + np.sort(rng.uniform(0, 1800, 2000))
    values = rng.normal(20, 5, 2000)
    store = opened(tmp_path)
    # Three flushes whose boundaries fall inside buckets: stored buckets are merged.
    for part in np.array_split(np.arange(2000), 3):
        store.write(batch_of("g", "t", times[part].tolist(), values[part].tolist()), BASE + 1800)
    for every in (60.0, 900.0):
        expected = []
        index = np.floor((times - BASE) / every)
        for bucket in np.unique(index):
            chosen = values[index == bucket]
            expected.append(
                (BASE + bucket * every, len(chosen), chosen.min(), chosen.mean(), chosen.max())
            )
        got = buckets(store, every)
        assert [row[:2] for row in got] == [row[:2] for row in expected]
        np.testing.assert_allclose(
            [row[2:] for row in got], [row[2:] for row in expected], rtol=1e-12
        )
    assert store.db.execute("SELECT count(*) FROM samples").fetchone()[0] == 2000


def test_known_minute_buckets(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.write(
        batch_of("g", "t", [BASE + s for s in range(120)], [float(s) for s in range(120)]),
        BASE + 120,
    )
    assert buckets(store, 60) == [(BASE, 60, 0.0, 29.5, 59.0), (BASE + 60, 60, 60.0, 89.5, 119.0)]
    assert buckets(store, 900) == [(BASE, 120, 0.0, 59.5, 119.0)]


def test_each_tier_keeps_its_own_span(tmp_path: Path) -> None:
    store = opened(tmp_path, raw=3600)
    times = [BASE + h * 3600.0 for h in range(48)]
    store.write(batch_of("g", "t", times, [1.0] * 48), BASE + 47 * 3600 + 1)
    now = BASE + 47 * 3600 + 1
    raw = store.db.execute("SELECT min(t) FROM samples").fetchone()[0]
    assert raw >= now - 3600
    minute = store.db.execute("SELECT min(t) FROM rollups WHERE every = 60").fetchone()[0]
    assert now - 86400 <= minute < now - 86400 + 3600
    assert store.db.execute("SELECT count(*) FROM rollups WHERE every = 900").fetchone()[0] == 48


def test_bounded_in_bytes_oldest_dropped_first_and_counted(tmp_path: Path) -> None:
    store = opened(tmp_path, raw=30 * 86400, max_bytes=1_000_000)
    for flush in range(120):
        start = BASE + flush * 1000.0
        times = [start + i for i in range(1000)]
        store.write(batch_of("g", "t", times, [float(i) for i in range(1000)]), start + 1000)
        assert store.used_bytes() <= 1_000_000
    assert store.dropped_rows > 0
    oldest = store.db.execute("SELECT min(t) FROM samples").fetchone()[0]
    newest = store.db.execute("SELECT max(t) FROM samples").fetchone()[0]
    assert oldest > BASE + 10_000  # the first flushes went
    assert newest == BASE + 119 * 1000.0 + 999  # the last one is all there
    assert (
        store.db.execute("SELECT value FROM meta WHERE key = 'dropped_rows'").fetchone()[0]
        == store.dropped_rows
    )
    store.close()
    assert (tmp_path / "history.db").stat().st_size <= 1_100_000


def test_one_transaction_per_write(tmp_path: Path) -> None:
    store = opened(tmp_path)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    for flush in range(5):
        times = [BASE + flush * 100 + i for i in range(100)]
        store.write(batch_of("g", "t", times, [1.0] * 100), BASE + 600)
    assert sum(s.startswith("BEGIN") for s in statements) == 5
    assert sum(s == "COMMIT" for s in statements) == 5
    assert store.commits == 5


def test_numbers_mappings_and_alarms_are_collected() -> None:
    def out(event: Event) -> Outgoing:
        return Outgoing(event, "t", 1, False)

    items = [
        out(Event("g", "temperature", 21.5, time=1.0, unit="°C")),
        out(Event("g", "door", True, time=2.0)),
        out(Event("g", "state", "open", time=3.0)),
        out(Event("m", "meter", {"power": 120, "phase": "L1", "volts": 230.5}, time=4.0)),
        out(Event("g", "temperature_alarm", "raised", time=5.0, tags={"threshold": "26"})),
        out(Event("w", "x", float("nan"), time=6.0)),
    ]
    batch = Batch()
    collect(items, SignalFilter(["*"]), batch)
    assert batch.keys == [("g", "temperature"), ("m", "meter.power"), ("m", "meter.volts")]
    assert batch.values == [21.5, 120.0, 230.5]
    assert batch.markers == [("g", "temperature_alarm", 5.0, 1, 26.0)]
    only = Batch()
    collect(items, SignalFilter(["m/*.power"]), only)
    assert only.keys == [("m", "meter.power")]


def test_the_file_reads_while_written(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.write(batch_of("g", "t", [BASE], [1.0]), BASE + 1)
    reader = sqlite3.connect(f"file:{tmp_path / 'history.db'}?mode=ro", uri=True)
    assert reader.execute("SELECT count(*) FROM samples").fetchone()[0] == 1
    store.write(batch_of("g", "t", [BASE + 1], [2.0]), BASE + 2)
    assert reader.execute("SELECT count(*) FROM samples").fetchone()[0] == 2
    with pytest.raises(sqlite3.OperationalError):
        reader.execute("DELETE FROM samples")
