"""`tidegate top`'s screen as text, from made-up status documents: no curses,
no gateway. Every frame is checked to be exactly the terminal's height with no
line wider than the terminal."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tidegate.top.model import Tracker
from tidegate.top.render import fit, render
from tidegate.top.state import ESCAPE, TAB, UiState
from tidegate.top.text import clip, spark
from tidegate.top.views import Section


def document(uptime: float, alpha: int, beta: int, depth: int = 10) -> dict[str, Any]:
    def driver(name: str, events: int, state: str = "running") -> dict[str, Any]:
        return {
            "name": name,
            "type": "sim",
            "state": state,
            "events": events,
            "errors": 0,
            "last_error": None,
            "last_event_age_s": 0.1,
        }

    return {
        "version": "0.1.0",
        "gateway": "greenhouse-1",
        "pid": 42,
        "uptime_s": uptime,
        "drivers": [driver("alpha", alpha), driver("beta", beta)],
        "rules": [{"name": "smooth", "in": 9, "out": 3, "dropped": 6, "filtered": 0, "errors": 0}],
        "pipeline": {"events_in": alpha + beta, "input_rejected": 0},
        "outbox": {
            "state": "open",
            "depth": depth,
            "bytes": 2048,
            "oldest_age_s": 4.0,
            "dropped": {"max_age": 3},
            "depth_by_priority": {"high": 0, "normal": depth, "low": 0},
            "max_bytes": 1_000_000,
        },
        "uplinks": [
            {
                "name": "cloud",
                "address": "broker:8883",
                "connected": False,
                "since_s": 12.0,
                "last_error": "connection refused",
                "inflight": 2,
                "waiting": depth,
            }
        ],
        "actions": {"fan": {"done": 4, "failed": 1, "refused": {"interlock": 2}, "last": "ok"}},
        "commands": {"received": 5, "done": 3, "refused": {"not_allowed": 2}, "allowed": ["fan"]},
        "rates": {"window_s": 60, "events_in": 30.0, "accepted": 12.5},
    }


def tracked(n: int = 6) -> Tracker:
    tracker = Tracker()
    for i in range(n):
        tracker.observe(document(1.0 + i, alpha=100 * i, beta=10 * i, depth=5 * i))
        tracker.event({"source": "beta", "name": "t", "value": 20.0 + i % 3, "unit": "°C"})
    return tracker


def screen(tracker: Tracker, ui: UiState, width: int = 80, height: int = 24) -> list[str]:
    lines = render(tracker, ui, width, height)
    assert len(lines) == height
    assert max(len(line) for line in lines) <= width
    return lines


def test_rates_come_from_successive_documents_on_the_gateways_clock() -> None:
    tracker = tracked()
    assert tracker.driver_rates == {"alpha": 100.0, "beta": 10.0}
    assert list(tracker.depth_trend) == [0, 5, 10, 15, 20, 25]
    assert list(tracker.signals[("beta", "t")].values) == [20.0, 21.0, 22.0, 20.0, 21.0]
    # Another gateway process (a restart): the rates start again instead of going negative.
    restarted = document(0.5, alpha=3, beta=1)
    restarted["pid"] = 43
    tracker.observe(restarted)
    assert tracker.driver_rates == {} and list(tracker.depth_trend) == [10]


def test_the_overview_shows_every_part_in_80_by_24() -> None:
    text = "\n".join(screen(tracked(), UiState()))
    for expected in (
        "tidegate greenhouse-1",
        "v0.1.0",
        "alpha  running  100",
        "beta/t 22 °C",
        "outbox 25 events",
        "max_age 3",
        "uplink cloud DOWN",
        "smooth",
        "actions 1: done 4 · failed 1 · refused 2",
        "refused not_allowed 2",
        "uplink cloud disconnected: connection refused",
        "carries no log warnings",
    ):
        assert expected in text, expected


@pytest.mark.parametrize("view", range(4))
@pytest.mark.parametrize(("width", "height"), [(80, 24), (40, 10), (132, 50), (20, 5)])
def test_every_view_fits_every_size(view: int, width: int, height: int) -> None:
    screen(tracked(), UiState(view=view), width, height)
    screen(tracked(), UiState(view=view, help=True), width, height)


def test_views_show_their_own_parts() -> None:
    tracker = tracked()
    drivers = "\n".join(screen(tracker, UiState(view=1)))
    assert "t = 22 °C" in drivers and "▁" in drivers
    outbox = "\n".join(screen(tracker, UiState(view=2)))
    assert "depth 25 · 2.0 kB of 1.0 MB" in outbox and "broker:8883  DISCONNECTED" in outbox
    assert "last error connection refused" in outbox and "waiting 25" in outbox
    actions = "\n".join(screen(tracker, UiState(view=3)))
    assert "fan refused: interlock 2" in actions and "allowed fan" in actions


def test_the_filter_hides_other_sources() -> None:
    ui = UiState(view=1)
    for code in [ord("/"), *b"al*", 10]:
        ui.key(code)
    assert ui.filter == "al*" and ui.editing is None
    text = "\n".join(screen(tracked(), ui))
    assert "alpha" in text and "beta" not in text and "1 hidden" in text
    ui.key(ord("/"))
    assert screen(tracked(), ui)[-1].endswith("al*_")
    ui.key(ESCAPE)
    assert ui.filter == "al*" and ui.editing is None


def test_keys() -> None:
    ui = UiState()
    assert ui.key(ord("3")) and ui.view == 2
    assert ui.key(TAB) and ui.view == 3
    assert ui.key(TAB) and ui.view == 0
    assert ui.key(ord("p")) and ui.paused
    assert "PAUSED" in screen(tracked(), ui)[0]
    assert ui.key(ord("?")) and ui.help
    assert "filter by source" in "\n".join(screen(tracked(), ui))
    assert ui.key(ESCAPE) and not ui.help
    assert not ui.key(ord("x"))
    assert ui.key(ord("q")) and ui.quit


def test_a_short_screen_cuts_the_longest_section_and_says_so() -> None:
    tall = Section([f"row {i}" for i in range(30)], keep=3)
    lines = fit([Section(["title"]), tall], 10)
    assert len(lines) == 10 and lines[0] == "title" and "22 more" in lines[-1]


def test_many_drivers_in_80_by_24() -> None:
    tracker = Tracker()
    for i in range(3):
        doc = document(1.0 + i, alpha=10 * i, beta=i)
        doc["drivers"] = [
            {**copy.deepcopy(doc["drivers"][0]), "name": f"sensor-{n:02d}"} for n in range(40)
        ]
        tracker.observe(doc)
    lines = screen(tracker, UiState())
    assert "more (a taller terminal shows them)" in "\n".join(lines)


def test_an_unreachable_gateway_keeps_the_last_status_and_says_so() -> None:
    tracker = tracked()
    tracker.failed("no gateway is running (nothing listens on /run/tidegate/control.sock)")
    lines = screen(tracker, UiState())
    assert "GATEWAY UNREACHABLE" in lines[0] and "no gateway is running" in lines[2]
    assert any("alpha" in line for line in lines)


def test_text_pieces() -> None:
    assert clip("abcdef", 4) == "abc…" and clip("abc", 4) == "abc"
    assert spark([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    assert spark([5, 5, 5], 8) == "▅▅▅" and spark([0, 0], 8, from_zero=True) == "▁▁"
    assert spark([0, 7], 8, ascii_only=True) == "_#"


def test_the_gateways_last_warnings_newest_first() -> None:
    tracker = Tracker()
    doc = document(1.0, alpha=1, beta=1)
    doc["warnings"] = [
        {"time": "2026-01-05T10:00:00Z", "level": "warning", "message": "first"},
        {"time": "2026-01-05T10:00:01Z", "level": "error", "message": "second"},
    ]
    tracker.observe(doc)
    lines = screen(tracker, UiState(view=3))
    start = lines.index("last warnings")
    assert lines[start + 1].endswith("error second") and lines[start + 2].endswith("warning first")
