"""The one reconnect policy: waits grow by ``factor`` up to ``max_delay`` and reset on success."""

from __future__ import annotations

import pytest

from tidegate.backoff import Backoff, ReconnectSection
from tidegate.priority import HIGH, LOW, NORMAL, PRIORITIES, priority_class


def test_waits_grow_by_the_factor_up_to_the_cap_without_jitter() -> None:
    policy = ReconnectSection(initial_delay=0.5, max_delay=3, factor=2, jitter=False)
    backoff = Backoff(policy)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_jitter_draws_between_half_and_all_of_the_delay() -> None:
    policy = ReconnectSection(initial_delay=1, max_delay=8, factor=2)
    assert policy.delay(3, draw=lambda: 0.0) == 2.0
    assert policy.delay(3, draw=lambda: 1.0) == 4.0
    assert policy.delay(100, draw=lambda: 1.0) == 8.0  # a long outage stays at the cap


def test_a_factor_of_one_retries_at_a_steady_pace() -> None:
    backoff = Backoff(ReconnectSection(initial_delay=2, max_delay=30, factor=1, jitter=False))
    assert {backoff.next_delay() for _ in range(10)} == {2.0}


def test_a_first_wait_longer_than_the_cap_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="initial_delay must not exceed max_delay"):
        ReconnectSection(initial_delay=60, max_delay=30)


def test_durations_are_read_like_every_other_duration() -> None:
    policy = ReconnectSection.model_validate({"initial_delay": "250ms", "max_delay": "1m"})
    assert (policy.initial_delay, policy.max_delay) == (0.25, 60.0)


def test_priority_classes_are_numbered_highest_first() -> None:
    assert PRIORITIES == ("high", "normal", "low")
    assert [priority_class(p) for p in PRIORITIES] == [HIGH, NORMAL, LOW] == [0, 1, 2]
