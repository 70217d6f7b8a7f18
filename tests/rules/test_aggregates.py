"""Aggregate functions against plain reference implementations (statistics, numpy)."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidegate.event import Value
from tidegate.rules.operators.window.aggregate import (
    NUMPY_FROM,
    WindowValues,
    compute,
    numeric_value,
    parse_aggregate,
    window_values,
)
from tidegate.rules.operators.window.numpy_values import LargeWindowValues

ALL_AGGREGATES = [
    "count",
    "sum",
    "avg",
    "mean",
    "min",
    "max",
    "first",
    "last",
    "stddev",
    "median",
    "p0",
    "p50",
    "p90",
    "p99.9",
    "p100",
    "rate",
    "integral",
]

Result = int | float


def reference_aggregate(
    name: str, values: Sequence[float], stamps: Sequence[float]
) -> Result | None:
    """The documented definition of each aggregate, written the plain way."""
    n = len(values)
    by_time = sorted(range(n), key=lambda i: stamps[i])  # stable: ties keep arrival order
    ordered = [values[i] for i in by_time]
    times = [stamps[i] for i in by_time]
    if name == "count":
        return n
    if name == "sum":
        return math.fsum(values)
    if n == 0:
        return None
    if name in ("avg", "mean"):
        return statistics.fmean(values)
    if name == "min":
        return min(values)
    if name == "max":
        return max(values)
    if name == "first":
        return ordered[0]
    if name == "last":
        return ordered[-1]
    if name == "stddev":
        return statistics.stdev(values) if n > 1 else None
    if name == "median":
        return statistics.median(values)
    if name.startswith("p"):
        return float(np.percentile(np.array(values), float(name[1:])))
    if name == "rate":
        if times[-1] == times[0]:
            return None
        return (ordered[-1] - ordered[0]) / (times[-1] - times[0])
    if name == "integral":
        area = 0.0
        for i in range(n - 1):
            area += (ordered[i] + ordered[i + 1]) / 2 * (times[i + 1] - times[i])
        return area
    raise AssertionError(name)


def reference_aggregates(
    names: Sequence[str], values: Sequence[float], stamps: Sequence[float]
) -> dict[str, Result]:
    results = {name: reference_aggregate(name, values, stamps) for name in names}
    return {name: r for name, r in results.items() if r is not None}


def tolerance(name: str, values: Sequence[float], stamps: Sequence[float]) -> float:
    """Rounding room: sums of this many terms of this size may differ this much."""
    magnitude = max((abs(v) for v in values), default=0.0) + 1.0
    room = 1e-13 * magnitude * (len(values) + 1)
    if name == "integral":  # terms are value x seconds
        room *= (max(stamps) - min(stamps) + 1.0) if stamps else 1.0
    return room


def assert_same_results(
    actual: dict[str, Result],
    expected: dict[str, Result],
    values: Sequence[float],
    stamps: Sequence[float],
) -> None:
    assert actual.keys() == expected.keys()
    for name, want in expected.items():
        got = actual[name]
        if name == "count":
            assert got == want and isinstance(got, int)
        else:
            room = tolerance(name, values, stamps)
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=room), (name, got, want)


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
# Few distinct values, so ties, duplicates and constant windows come up often.
tied = st.sampled_from([-2.5, 0.0, 1.0, 1.0, 3.25, 7.0])
samples = st.lists(st.tuples(finite | tied, st.floats(0, 1000) | st.sampled_from([5.0, 6.0])))


@settings(max_examples=200)
@given(samples)
def test_every_aggregate_equals_reference_in_both_implementations(
    pairs: list[tuple[float, float]],
) -> None:
    values = [v for v, _ in pairs]
    stamps = [t for _, t in pairs]
    expected = reference_aggregates(ALL_AGGREGATES, values, stamps)
    aggregates = [parse_aggregate(name) for name in ALL_AGGREGATES]
    for implementation in (WindowValues, LargeWindowValues):
        window = implementation(values, stamps)
        actual = {a.name: a.function(window) for a in aggregates}
        defined = {name: r for name, r in actual.items() if r is not None}
        assert_same_results(defined, expected, values, stamps)


@settings(max_examples=20)
@given(st.lists(finite, min_size=NUMPY_FROM, max_size=3 * NUMPY_FROM))
def test_large_windows_take_the_numpy_path_with_the_same_results(values: list[float]) -> None:
    stamps = [float(i % 97) for i in range(len(values))]  # out of order on purpose
    assert isinstance(window_values(values, stamps), LargeWindowValues)
    assert not isinstance(window_values(values[:3], stamps[:3]), LargeWindowValues)
    assert_same_results(
        compute([parse_aggregate(n) for n in ALL_AGGREGATES], values, stamps),
        reference_aggregates(ALL_AGGREGATES, values, stamps),
        values,
        stamps,
    )


def test_empty_window() -> None:
    results = compute([parse_aggregate(n) for n in ALL_AGGREGATES], [], [])
    assert results == {"count": 0, "sum": 0.0}


def test_single_value_window() -> None:
    results = compute([parse_aggregate(n) for n in ALL_AGGREGATES], [4.5], [10.0])
    # stddev needs two values and rate two timestamps; integral over no interval is 0.
    assert "stddev" not in results and "rate" not in results
    assert results["integral"] == 0.0
    assert results["count"] == 1
    value_aggregates = [
        n for n in ALL_AGGREGATES if n not in ("count", "integral", "stddev", "rate")
    ]
    assert {n: results[n] for n in value_aggregates} == dict.fromkeys(value_aggregates, 4.5)


def test_rate_and_integral_use_time_order_and_seconds() -> None:
    # Arrival order 2, 0, 1 (by stamp): a ramp of 2 units per second.
    values, stamps = [14.0, 10.0, 12.0], [102.0, 100.0, 101.0]
    results = compute(
        [parse_aggregate(n) for n in ("first", "last", "rate", "integral")], values, stamps
    )
    assert results == {"first": 10.0, "last": 14.0, "rate": 2.0, "integral": 24.0}


def test_rate_of_values_sharing_one_timestamp_is_undefined() -> None:
    assert compute([parse_aggregate("rate")], [1.0, 5.0], [7.0, 7.0]) == {}


def test_first_and_last_break_timestamp_ties_by_arrival() -> None:
    results = compute(
        [parse_aggregate("first"), parse_aggregate("last")], [1.0, 2.0, 3.0], [5.0] * 3
    )
    assert results == {"first": 1.0, "last": 3.0}


def test_stddev_is_the_sample_standard_deviation() -> None:
    (result,) = compute(
        [parse_aggregate("stddev")], [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], [0.0] * 8
    ).values()
    assert result == pytest.approx(statistics.stdev([2, 4, 4, 4, 5, 5, 7, 9]))  # 2.138..., not 2.0


def test_percentiles_interpolate_linearly() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    results = compute(
        [parse_aggregate(n) for n in ("p50", "p90", "median", "p12.5")], values, [0.0] * 4
    )
    assert results == pytest.approx({"p50": 2.5, "p90": 3.7, "median": 2.5, "p12.5": 1.375})


@pytest.mark.parametrize("name", ["p0", "p5", "p50", "p99", "p99.9", "p100", "p07.25"])
def test_percentile_names(name: str) -> None:
    assert parse_aggregate(name).name == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("average", "'average' is not an aggregate; use one of count, sum, avg"),
        ("p101", "percentile 'p101' is above p100"),
        ("p", "not an aggregate"),
        ("p9x", "not an aggregate"),
        ("P90", "not an aggregate"),
        ("p-1", "not an aggregate"),
    ],
)
def test_unknown_aggregates_are_refused_with_the_valid_names(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_aggregate(name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, 1.5),
        (3, 3.0),
        (True, 1.0),
        (False, 0.0),
        (-0.0, 0.0),
        (10**400, None),  # too large for a float
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        ("3.5", None),
        ("", None),
        ({"x": 1.0}, None),
    ],
)
def test_only_finite_numbers_and_booleans_are_numeric(value: Value, expected: float | None) -> None:
    assert numeric_value(value) == expected


NUMPY_PROBE = """
import sys

from tidegate.rules.config import RuleConfig
from tidegate.rules.stage import RouteDefaults, RuleStage
import tidegate.rules.loader, tidegate.rules.replay, tidegate.rules.recording

def stage(window):
    rule = RuleConfig.model_validate({"name": "w", "window": window, "publish": {}})
    RuleStage([rule], RouteDefaults("gw", "p", "{source}", 1))
    return "numpy" in sys.modules

print("numpy" in sys.modules)
print(stage({"kind": "count", "count": 10}))
print(stage({"kind": "tumbling", "size": 60}))
"""


def test_numpy_is_imported_only_for_a_rule_whose_windows_can_use_it() -> None:
    # A fresh interpreter: this one has numpy already (the tests compare against it).
    result = subprocess.run(
        [sys.executable, "-c", NUMPY_PROBE], capture_output=True, text=True, check=True
    )
    loaded_at_import, for_ten_values, for_a_minute = result.stdout.split()
    assert loaded_at_import == "False"  # the rule engine and its schema: no numpy
    assert for_ten_values == "False"  # count windows of 10 never reach NUMPY_FROM values
    assert for_a_minute == "True"  # loaded when the rule is built, not at its first window
