"""Cost of the window operator: events/s and µs per event, and memory per key.

Run: ``.venv/bin/python -m bench rule_windows`` (or ``python bench/rule_windows.py``).
``--quick`` runs one round instead of three.

Throughput: every key reports 10 times a second of simulated time, the clock
ticks every 0.25 s like the pipeline's, and the operator computes
``[avg, min, max, p90, count]``. A tumbling window of 60 s holds 600 values per
key when it closes; a sliding window aggregates its whole span on every event,
so its cost grows with the values it holds (10 s: 100 values, 60 s: 600).
Each figure is the best of three rounds (one with ``--quick``); the events are
built beforehand.

Memory: tracemalloc's count of the bytes the operator holds, per key, with
one value per key (the fixed cost of a key) and with 600 (a minute at 10 Hz).

Closing: the cost of the five aggregates over one window, in the pure-Python
and the numpy implementation, which is how ``NUMPY_FROM`` was chosen.
"""

from __future__ import annotations

import sys
import time
import timeit
import tracemalloc
from collections.abc import Iterator
from typing import Any

from pydantic import TypeAdapter

import tidegate.rules.operators.builtins  # noqa: F401 - declares the window kinds
from tidegate.event import Event
from tidegate.rules.operators.window.aggregate import NUMPY_FROM, WindowValues, parse_aggregate
from tidegate.rules.operators.window.config import WindowKindSection, WindowSection
from tidegate.rules.operators.window.numpy_values import LargeWindowValues
from tidegate.rules.operators.window.operator import WindowOperator

AGGREGATES = ["avg", "min", "max", "p90", "count"]
RATE_PER_KEY = 10.0  # values per second per key
TICK = 0.25  # seconds between ticks, as in the pipeline
T0 = 1_700_000_000.0


def _operator(kind: str, size: float) -> WindowOperator:
    config: dict[str, Any] = {"kind": kind, "size": size, "aggregate": AGGREGATES}
    section: TypeAdapter[WindowKindSection] = TypeAdapter(WindowSection)
    return WindowOperator.build(section.validate_python(config))


def _event_stream(keys: int, count: int) -> Iterator[Event]:
    """`count` events from `keys` sources, in time order, 10 per second per key."""
    step = 1.0 / (RATE_PER_KEY * keys)
    sources = [f"sensor{k}" for k in range(keys)]
    for i in range(count):
        yield Event(sources[i % keys], "temperature", 20.0 + (i % 17) * 0.1, T0 + i * step, "id")


def _run(op: WindowOperator, events: list[Event]) -> tuple[float, int]:
    """Seconds to push the events through (ticking the clock as the pipeline does); outputs."""
    next_tick = events[0].time
    emitted = 0
    start = time.perf_counter()
    for event in events:
        if event.time >= next_tick:
            emitted += len(op.tick(event.time))
            next_tick += TICK
        emitted += len(op.apply(event))
    elapsed = time.perf_counter() - start
    return elapsed, emitted


def _throughput(kind: str, size: float, keys: int, rounds: int) -> tuple[int, float, int]:
    """Events, best µs per event, outputs, over three window lengths of simulated time."""
    events = list(_event_stream(keys, int(3 * size * RATE_PER_KEY * keys)))
    best = float("inf")
    emitted = 0
    for _ in range(rounds):
        elapsed, emitted = _run(_operator(kind, size), events)
        best = min(best, elapsed)
    return len(events), best / len(events) * 1e6, emitted


def _close_micros(implementation: type[WindowValues], n: int) -> float:
    values = [20.0 + (i * 7919 % 1000) * 0.01 for i in range(n)]
    stamps = [T0 + i * 0.1 for i in range(n)]
    aggregates = [parse_aggregate(name) for name in AGGREGATES]
    repeat = max(3, 20_000 // n)

    def close() -> None:
        window = implementation(values, stamps)
        for aggregate in aggregates:
            aggregate.function(window)

    return min(timeit.repeat(close, number=repeat, repeat=3)) / repeat * 1e6


def _bytes_per_key(kind: str, keys: int, values_per_key: int) -> float:
    op = _operator(kind, 3600.0)  # nothing closes while we measure
    op.tick(T0)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    # Events made on the fly and dropped, as in the pipeline: what stays is what the
    # operator keeps (the values, their timestamps, the latest event of each key).
    for event in _event_stream(keys, keys * values_per_key):
        op.apply(event)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert op.open_windows >= keys  # the operator really holds them
    return held / keys


def main(argv: list[str]) -> None:
    rounds = 1 if "--quick" in argv else 3
    print(f"window operator, aggregate {AGGREGATES}, {RATE_PER_KEY:g} values/s per key\n")
    print(
        f"{'kind':<10} {'size':>5} {'keys':>5} {'values/window':>13} {'events':>8} "
        f"{'events/s':>10} {'µs/event':>9} {'outputs':>8}"
    )
    for kind, size in (("tumbling", 60.0), ("sliding", 10.0), ("sliding", 60.0)):
        for keys in (1, 10, 100):
            count, micros, emitted = _throughput(kind, size, keys, rounds)
            held = int(size * RATE_PER_KEY)
            print(
                f"{kind:<10} {size:>4g}s {keys:>5} {held:>13} {count:>8} "
                f"{1e6 / micros:>10,.0f} {micros:>9.2f} {emitted:>8}"
            )
    header = f"{'memory held':<10} {'keys':>5} {'values/key':>10} {'bytes/key':>10}"
    print(f"\n{header} {'bytes/value':>11}")
    for kind in ("tumbling", "sliding"):
        for keys, values in ((1000, 1), (100, 600)):
            per_key = _bytes_per_key(kind, keys, values)
            print(f"{kind:<10} {keys:>5} {values:>10} {per_key:>10,.0f} {per_key / values:>11,.0f}")
    print(f"\n{'closing one window: µs':<24} {'Python':>8} {'numpy':>8}  (numpy from {NUMPY_FROM})")
    for n in (10, 100, 1000, 10_000):
        python = _close_micros(WindowValues, n)
        numpy = _close_micros(LargeWindowValues, n)
        print(f"{n:>10} values{'':<7} {python:>8.1f} {numpy:>8.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
