"""`tidegate top` after a restart: a signal's sparkline starts from the gateway's
history file (its latest raw values), not empty; and nothing breaks without one."""

from __future__ import annotations

from pathlib import Path

from tests.history.test_store import BASE, batch_of, opened
from tidegate.history.recent import recent_values
from tidegate.top.model import HISTORY, Tracker


def test_a_new_signal_starts_from_its_history(tmp_path: Path) -> None:
    store = opened(tmp_path)
    times = [BASE + i for i in range(100)]
    store.write(
        batch_of("greenhouse", "temperature", times, [float(i) for i in range(100)]), BASE + 100
    )
    store.write(batch_of("greenhouse", "humidity", times[:3], [50.0, 51.0, 52.0]), BASE + 100)
    path = tmp_path / "history.db"
    assert recent_values(path, "greenhouse", "temperature", 5) == [95.0, 96.0, 97.0, 98.0, 99.0]
    assert recent_values(path, "greenhouse", "humidity", 5) == [50.0, 51.0, 52.0]
    assert recent_values(path, "greenhouse", "wind", 5) == []
    assert recent_values(tmp_path / "none.db", "greenhouse", "temperature", 5) == []

    tracker = Tracker(recall=lambda source, name: recent_values(path, source, name, HISTORY))
    tracker.event({"source": "greenhouse", "name": "temperature", "value": 21.5})
    track = tracker.signals[("greenhouse", "temperature")]
    assert list(track.values) == [float(i) for i in range(100 - HISTORY, 100)]
    assert track.value == 21.5
