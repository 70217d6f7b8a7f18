"""Cost of the rule stage alone: events/s and µs per event with 1, 10 and 100 rules.

Run: ``./dev bench rule_stage`` (``--quick``: one round instead of three).

The events come from 100 sources x 10 names (1,000 streams), 1,000 per
simulated second, in batches of 1,000 as the pipeline hands them over, and
the stage is ticked every 0.25 s of simulated time as the pipeline ticks it.
Every figure is the best of three rounds over pre-built events; it includes
making the ``Outgoing`` and rendering its topic.

Rule sets (N = 1, 10, 100):

- ``route``: N rules, each ``match`` on some sources + ``publish``; every event
  is taken by the first rule that matches it (the simple, common case);
- ``where+set``: the same, each rule also with ``where: value > -1000`` and
  ``set: {value: value * 1.8 + 32, unit: "'°F'"}``;
- ``window``: the ``route`` rules each with a 10 s tumbling window
  (avg, max, count) — the readings become aggregates;
- ``chain``: N rules that all take every event (``where``, no outcome) so each
  event passes through all N before the default route: the worst case;
- ``detect``: the ``route`` rules each with ``absence`` (60 s) and an ``alarm``
  (above 30 for 60 s) over their streams;
- ``detect-late``: the same with every event stamped 2 s before the clock (a
  device's own, lagging timestamps): each event is late, so its rule is ticked
  right after it (see ``tidegate.rules.config``, "Time").
"""

from __future__ import annotations

import time
from typing import Any

from tidegate.event import Event
from tidegate.rules.config import RuleConfig
from tidegate.rules.stage import RouteDefaults, RuleStage

SOURCES = 100
NAMES = 10
RATE = 1000.0  # events per simulated second
BATCH = 1000
TICK = 0.25
T0 = 1_700_000_000.0
DEFAULTS = RouteDefaults(
    gateway="gw", prefix="tidegate/gw", topic="{prefix}/{source}/{name}", qos=1
)


def _events(count: int) -> list[Event]:
    names = [f"reading{n}" for n in range(NAMES)]
    return [
        Event(
            f"sensor{i % SOURCES}",
            names[(i // SOURCES) % NAMES],
            20.0 + (i % 37) * 0.5,
            T0 + i / RATE,
            f"id{i}",
        )
        for i in range(count)
    ]


def _sources_of(k: int, rules: int) -> list[str]:
    return [f"sensor{s}" for s in range(SOURCES) if s % rules == k]


def _rule_set(kind: str, rules: int) -> list[RuleConfig]:
    configs: list[dict[str, Any]] = []
    for k in range(rules):
        rule: dict[str, Any] = {"name": f"r{k}"}
        if kind == "chain":
            rule["where"] = "value > -1000"
        else:
            rule["match"] = {"source": _sources_of(k, rules)}
            rule["publish"] = {"topic": "site/{gateway}/{source}/{name}"}
        if kind == "where+set":
            rule["where"] = "value > -1000"
            rule["set"] = {"value": "value * 1.8 + 32", "unit": "'°F'"}
        if kind.startswith("detect"):
            rule["absence"] = {"after": "60s"}
            rule["alarm"] = {"above": 30, "for": "60s"}
        if kind == "window":
            rule["window"] = {
                "kind": "tumbling",
                "size": "10s",
                "aggregate": ["avg", "max", "count"],
            }
        configs.append(rule)
    return [RuleConfig.model_validate(c) for c in configs]


def _run(stage: RuleStage, events: list[Event], lag: float = 0.0) -> tuple[float, int]:
    """Process ``events`` in batches, ticking with a clock ``lag`` s ahead of their stamps."""
    outputs = 0
    next_tick = events[0].time
    start = time.perf_counter()
    for i in range(0, len(events), BATCH):
        batch = events[i : i + BATCH]
        if batch[0].time >= next_tick:
            outputs += len(stage.tick(batch[0].time + lag))
            next_tick += TICK
        outputs += len(stage.process(batch))
    outputs += len(stage.flush())
    return time.perf_counter() - start, outputs


def main(argv: list[str]) -> None:
    rounds = 1 if "--quick" in argv else 3
    events = _events(100_000)
    print(
        f"rule stage alone: {len(events):,} events, {SOURCES * NAMES} streams, "
        f"batches of {BATCH}, tick every {TICK:g} s (simulated), best of {rounds}\n"
    )
    print(f"{'rules':<12} {'N':>4} {'events/s':>12} {'µs/event':>9} {'outputs':>9}")
    for kind in ("route", "where+set", "window", "chain", "detect", "detect-late"):
        for rules in (1, 10, 100):
            best = float("inf")
            outputs = 0
            for _ in range(rounds):
                stage = RuleStage(_rule_set(kind, rules), DEFAULTS)
                elapsed, outputs = _run(stage, events, 2.0 if kind == "detect-late" else 0.0)
                best = min(best, elapsed)
            micros = best / len(events) * 1e6
            print(
                f"{kind:<12} {rules:>4} {len(events) / best:>12,.0f} {micros:>9.2f} {outputs:>9,}"
            )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
