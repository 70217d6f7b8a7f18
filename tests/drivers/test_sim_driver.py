"""The sim driver: shapes, rates, seeds, and one model per signal kind."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from pydantic import ValidationError

from tests.drivers.harness import WAIT, Probe
from tidegate.config.loader import load_config_text
from tidegate.driver import DriverState
from tidegate.drivers.sim import config as sim_config
from tidegate.drivers.sim.config import SimConfig
from tidegate.drivers.sim.driver import SimDriver
from tidegate.errors import ConfigError
from tidegate.event import Event


def run_sim(config: dict[str, object]) -> list[Event]:
    """Every event of a finite sim config (each signal has a ``count``)."""
    cfg = SimConfig.model_validate({"name": "s", "type": "sim", **config})
    probe = Probe()
    driver = SimDriver(cfg, probe.context)
    asyncio.run(asyncio.wait_for(driver.run(probe.emit), WAIT))
    assert driver.health.state is DriverState.STOPPED
    assert driver.health.events == len(probe.events)
    return probe.events


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


def test_module_docstring_yaml_loads_through_the_config_loader() -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", sim_config.__doc__ or "", re.S)
    (driver,) = load_config_text(block, "sim/config.py docstring").drivers
    assert isinstance(driver, SimConfig)
    assert [s.kind for s in driver.signals] == ["sine", "random_walk", "step", "counter", "toggle"]


@pytest.mark.parametrize(
    "signal",
    [
        {"name": "t", "kind": "sine", "rate": 1, "step": 2},  # random_walk's key
        {"name": "t", "kind": "counter", "rate": 1, "values": [1, 2]},  # step's key
        {"name": "t", "kind": "toggle", "rate": 1, "amplitude": 1},  # sine's key
    ],
)
def test_a_key_of_another_signal_kind_is_refused(signal: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SimConfig.model_validate({"name": "s", "signals": [signal]})


def test_a_wrong_signal_key_is_reported_at_its_line() -> None:
    text = (
        "drivers:\n"
        "  - name: s\n"
        "    type: sim\n"
        "    signals:\n"
        "      - name: t\n"
        "        kind: sine\n"
        "        rate: 1\n"
        "        increment: 2\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "sim.yaml")
    assert str(caught.value).startswith(
        "sim.yaml:8:9: drivers[0].signals[0].increment: unknown key 'increment'"
    ), str(caught.value)


@pytest.mark.parametrize("signal", [{"name": "t", "rate": 1}, {"name": "t", "kind": "sinus"}])
def test_an_unknown_or_missing_signal_kind_lists_the_kinds(signal: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="`kind` must be one of: sine, random_walk, step"):
        SimConfig.model_validate({"name": "s", "signals": [signal]})
