"""The sim driver: shapes, rates, seeds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tidegate.driver import DriverContext
from tidegate.drivers.sim import SimConfig, SimDriver
from tidegate.event import Event


def run_sim(config: dict[str, object]) -> list[Event]:
    cfg = SimConfig.model_validate({"name": "s", "type": "sim", **config})
    driver = SimDriver(cfg, DriverContext("gw", lambda raw, reason: None))
    got: list[Event] = []

    async def emit(events: Sequence[Event]) -> None:
        got.extend(events)

    asyncio.run(asyncio.wait_for(driver.run(emit), 30))
    return got


def test_counted_signals_emit_exactly_count_events_in_order() -> None:
    events = run_sim(
        {"signals": [{"name": "c", "kind": "counter", "rate": 5000, "count": 3000, "start": 10}]}
    )
    assert [e.value for e in events] == list(range(10, 3010))
    assert len({e.id for e in events}) == 3000
    assert [e.id for e in events] == sorted(e.id for e in events)  # ids are time-ordered
    times = [e.time for e in events]
    assert times == sorted(times)
    assert times[-1] - times[0] == pytest.approx(2999 / 5000, rel=1e-6)


def test_same_seed_same_values() -> None:
    spec = {
        "seed": 3,
        "signals": [
            {"name": "w", "kind": "random_walk", "rate": 10000, "count": 200, "step": 2},
            {"name": "s", "kind": "sine", "rate": 10000, "count": 200, "noise": 1},
            {"name": "t", "kind": "toggle", "rate": 10000, "count": 200, "probability": 0.5},
        ],
    }

    def values() -> list[tuple[str, object]]:
        return [(e.name, e.value) for e in sorted(run_sim(spec), key=lambda e: (e.name, e.time))]

    assert values() == values()
    other = {**spec, "seed": 4}
    assert [
        (e.name, e.value) for e in sorted(run_sim(other), key=lambda e: (e.name, e.time))
    ] != values()


def test_shapes() -> None:
    events = run_sim(
        {
            "signals": [
                {
                    "name": "w",
                    "kind": "random_walk",
                    "rate": 10000,
                    "count": 500,
                    "step": 5,
                    "min": -1,
                    "max": 1,
                },
                {
                    "name": "st",
                    "kind": "step",
                    "rate": 10,
                    "count": 4,
                    "values": [1, 2],
                    "hold": 0.2,
                },
                {"name": "t", "kind": "toggle", "rate": 10000, "count": 4},
            ]
        }
    )
    by_name: dict[str, list[object]] = {}
    for e in events:
        by_name.setdefault(e.name, []).append(e.value)
    assert all(-1 <= float(v) <= 1 for v in by_name["w"])  # type: ignore[arg-type]
    assert by_name["st"] == [1, 1, 2, 2]
    assert by_name["t"] == [True, False, True, False]


def test_high_rate_is_sustained() -> None:
    # 20,000 events/s for half a second: all of them, with correct spacing.
    events = run_sim({"signals": [{"name": "f", "kind": "counter", "rate": 20000, "count": 10000}]})
    assert len(events) == 10000
    assert events[-1].time - events[0].time == pytest.approx(9999 / 20000, rel=1e-6)


def test_one_event_per_minute_is_accepted() -> None:
    cfg = SimConfig.model_validate(
        {"name": "s", "type": "sim", "signals": [{"name": "m", "kind": "sine", "interval": "1m"}]}
    )
    assert cfg.signals[0].events_per_second == pytest.approx(1 / 60)
