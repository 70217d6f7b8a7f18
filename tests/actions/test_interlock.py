"""The interlock on a fake clock: every rule reached, on both sides of its boundary."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tidegate.actions.interlock import Interlock, InterlockSection
from tidegate.errors import ActionRefused


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def interlock(clock: FakeClock, **rules: Any) -> Interlock:
    return Interlock(InterlockSection.model_validate(rules), clock, name="vent")


def refused(lock: Interlock, on: bool) -> str:
    with pytest.raises(ActionRefused) as caught:
        lock.check(on)
    assert caught.value.reason == "interlock"
    return str(caught.value)


def test_without_rules_nothing_is_refused() -> None:
    clock = FakeClock()
    lock = interlock(clock)
    for on in [True, False] * 50:
        lock.check(on)
        lock.switched(on)
    assert lock.off_due() is None


def test_min_off_refuses_switching_on_until_it_has_passed() -> None:
    clock = FakeClock()
    lock = interlock(clock, min_off="30s")
    lock.switched(True)
    lock.switched(False)
    clock.advance(12)
    assert refused(lock, True) == "vent: off for 12 s of its 30 s minimum; try again in 18 s"
    clock.advance(17.99)
    refused(lock, True)
    clock.advance(0.01)
    lock.check(True)  # exactly the minimum: allowed


def test_min_on_refuses_switching_off_until_it_has_passed() -> None:
    clock = FakeClock()
    lock = interlock(clock, min_on=5)
    lock.switched(True)
    clock.advance(2.25)
    assert refused(lock, False) == "vent: on for 2.2 s of its 5 s minimum; try again in 2.8 s"
    clock.advance(2.75)
    lock.check(False)


def test_min_on_does_not_refuse_switching_on_nor_min_off_switching_off() -> None:
    clock = FakeClock()
    lock = interlock(clock, min_on=5, min_off=5)
    lock.switched(False)
    lock.check(False)  # the state it has: never refused
    lock.switched(True)
    lock.check(True)
    lock.switched(True)  # no switch: the timer keeps running from the first
    clock.advance(5)
    lock.check(False)


def test_the_first_switch_starts_the_timers() -> None:
    clock = FakeClock()
    lock = interlock(clock, min_off=10)
    assert lock.on is None
    lock.check(True)  # nothing known yet: nothing to hold
    lock.switched(False)  # the state driven at start
    clock.advance(9)
    refused(lock, True)
    clock.advance(1)
    lock.check(True)


def test_max_on_sets_when_off_is_due() -> None:
    clock = FakeClock()
    lock = interlock(clock, max_on="2m")
    assert lock.off_due() is None
    lock.switched(False)
    assert lock.off_due() is None
    lock.switched(True)
    assert lock.off_due() == 1120.0
    clock.advance(50)
    lock.switched(True)  # still on: the deadline does not move
    assert lock.off_due() == 1120.0
    lock.switched(False)
    assert lock.off_due() is None


def test_max_switches_per_hour_is_a_sliding_window() -> None:
    clock = FakeClock()
    lock = interlock(clock, max_switches_per_hour=4)
    for on in (True, False, True, False):  # at t = 0, 10, 20, 30
        lock.check(on)
        lock.switched(on)
        clock.advance(10)
    assert refused(lock, True) == (
        "vent: switched 4 times in the last hour, its maximum is 4; try again in 3560 s"
    )
    clock.advance(3559.5)  # t = 3599.5: the first switch (t = 0) is still in the hour
    refused(lock, True)
    clock.advance(0.5)  # t = 3600: it has left
    lock.check(True)


def test_max_switches_never_refuses_switching_off() -> None:
    clock = FakeClock()
    lock = interlock(clock, max_switches_per_hour=1)
    lock.switched(True)
    lock.check(False)
    lock.switched(False)
    assert "switched 2 times in the last hour, its maximum is 1" in refused(lock, True)
    clock.advance(3600)
    lock.check(True)


def test_the_same_state_is_neither_refused_nor_counted() -> None:
    clock = FakeClock()
    lock = interlock(clock, max_switches_per_hour=1, min_on=100)
    lock.switched(True)
    for _ in range(10):
        lock.check(True)
        lock.switched(True)
    clock.advance(100)
    lock.switched(False)
    assert "switched 2 times" in refused(lock, True)


def test_a_pulse_must_fit_between_min_on_and_max_on() -> None:
    clock = FakeClock()
    lock = interlock(clock, min_on=2, max_on=10)
    lock.switched(False)
    with pytest.raises(ActionRefused, match=r"^vent: a 10\.5 s pulse exceeds max_on 10 s$"):
        lock.check_pulse(10.5)
    with pytest.raises(ActionRefused, match=r"^vent: a 1\.5 s pulse is shorter than min_on 2 s$"):
        lock.check_pulse(1.5)
    lock.check_pulse(10)
    lock.check_pulse(2)
    lock.switched(True)
    clock.advance(1)
    lock.check_pulse(1)  # already on for 1 s: with the pulse, 2 s on
    with pytest.raises(ActionRefused, match="shorter than min_on"):
        lock.check_pulse(0.9)


def test_a_pulse_is_refused_when_switching_on_is() -> None:
    clock = FakeClock()
    lock = interlock(clock, min_off=60)
    lock.switched(False)
    with pytest.raises(ActionRefused, match="minimum"):
        lock.check_pulse(1)


@pytest.mark.parametrize(
    "rules",
    [
        {"min_on": 0},
        {"min_off": -1},
        {"max_on": "0s"},
        {"max_switches_per_hour": 0},
        {"max_off": 3},
        {"min_on": "soon"},
    ],
)
def test_bad_rules_are_config_errors(rules: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        InterlockSection.model_validate(rules)


def test_durations_take_units() -> None:
    section = InterlockSection.model_validate({"min_on": "500ms", "min_off": "3m", "max_on": "1h"})
    assert (section.min_on, section.min_off, section.max_on) == (0.5, 180.0, 3600.0)
    assert InterlockSection().max_switches_per_hour is None
