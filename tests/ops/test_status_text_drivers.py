"""The driver details of `tidegate status`'s text form: each driver's own counters
and its devices that stopped answering, rendered from a status document built here
(pure rendering: no gateway)."""

from __future__ import annotations

from typing import Any

from tidegate.ops.status_text import _driver_details


def driver(name: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, "type": "serial", **keys}


def device(stale: bool, seen: float | None, error: str | None = None) -> dict[str, Any]:
    return {"stale": stale, "last_seen_age_s": seen, "last_error": error}


def test_counters_and_stale_devices_are_shown_per_driver() -> None:
    lines = _driver_details([
        driver("gps", counters={"clock_fallback": 2, "device_time": 1411}),
        driver("meter", counters={"illegal_address": 3}, devices={
            "slave 1": device(False, 0.4),
            "slave 3": device(True, 125.0, "no response within 1 s"),
            "slave 7": device(True, None),
        }),
    ])
    assert lines == [
        "  gps: clock_fallback 2 · device_time 1411",
        "  meter: illegal_address 3",
        "  meter slave 3: STALE (last answer 2 min ago) · no response within 1 s",
        "  meter slave 7: STALE (never answered) · -",
    ]


def test_nothing_to_say_is_no_line_and_an_older_gateway_is_understood() -> None:
    assert _driver_details([
        driver("quiet", counters={}, devices={"28-0316": device(False, 1.0)}),
        driver("older"),  # a gateway from before counters and devices: no such keys
    ]) == []
