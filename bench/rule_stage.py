"""Cost of the rule stage alone: events/s and µs per event with 1, 10 and 100 rules.

Run: ``./dev bench rule_stage`` (``--quick``: one round instead of three; name
rule sets, e.g. ``detect detect-late``, to run only those).

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
- ``detect``: the ``route`` rules each with ``absence`` (5 s) and an ``alarm``
  (above 30 for 3 s) over their streams. The detectors have work to do: each
  stream is hot for 10 s, then normal for 10 s (its phase shifted per stream, so
  transitions are spread over time), and one name in ten goes silent for 8 s
  in every 40 s (its readings go to another name meanwhile, so the event count
  stays the same). So every simulated second ~100 alarms are raised or cleared
  and ~6 streams go stale or recover, and most ticks have something due;
- ``detect-late``: the same with every event stamped 2 s before the clock (a
  device's own, lagging timestamps): each event is late, so its rule is ticked
  right after it (see ``tidegate.rules.config``, "Time"), and with a lag (2 s)
  close to ``for`` (3 s) many of those ticks find an alarm due.

``outputs`` counts what the stage output: the 100,000 readings plus the events
the operators made (aggregates, alarms, absence reports).
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


HOT_FOR = 10
"""Seconds each stream is hot (35, above the alarm threshold), then as long normal (20)."""
SILENT = (8, 40)
"""The last name of each source is silent 8 s in every 40 s (longer than absence's 5 s)."""


def _events(count: int) -> list[Event]:
    names = [f"reading{n}" for n in range(NAMES)]
    streams = SOURCES * NAMES
    events = []
    for i in range(count):
        second, stream = divmod(i, streams)  # one reading per stream and second
        phase = second + stream  # shifted per stream: transitions spread over time
        name = (i // SOURCES) % NAMES
        if name == NAMES - 1 and phase % SILENT[1] < SILENT[0]:
            name -= 1  # silent: its reading goes to the neighbouring name
        value = 35.0 if (phase // HOT_FOR) % 2 == 0 else 20.0
        events.append(Event(f"sensor{i % SOURCES}", names[name], value, T0 + i / RATE, f"id{i}"))
    return events


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
            rule["absence"] = {"after": "5s"}
            rule["alarm"] = {"above": 30, "for": "3s"}
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
        while next_tick <= batch[0].time:  # the ticks due since the previous batch
            outputs += len(stage.tick(next_tick + lag))
            next_tick += TICK
        outputs += len(stage.process(batch))
    outputs += len(stage.flush())
    return time.perf_counter() - start, outputs


KINDS = ("route", "where+set", "window", "chain", "detect", "detect-late")


def main(argv: list[str]) -> None:
    """``--quick``: one round; other arguments: only those rule sets (e.g. ``detect``)."""
    rounds = 1 if "--quick" in argv else 3
    events = _events(100_000)
    print(
        f"rule stage alone: {len(events):,} events, {SOURCES * NAMES} streams, "
        f"batches of {BATCH}, tick every {TICK:g} s (simulated), best of {rounds}\n"
    )
    print(f"{'rules':<12} {'N':>4} {'events/s':>12} {'µs/event':>9} {'outputs':>9}")
    kinds = [a for a in argv if not a.startswith("-")] or list(KINDS)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f"unknown rule set {', '.join(unknown)} (known: {', '.join(KINDS)})")
    for kind in kinds:
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
