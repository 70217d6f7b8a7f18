"""The collector's pace while gateways run: slower inside, restored after the last one,
however the blocks of gateways in one process overlap."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tidegate.ops.collector import YOUNG, paced_for_throughput


@pytest.fixture
def default_pace() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_overlapping_gateways_restore_the_pace_after_the_last(
    default_pace: tuple[int, int, int],
) -> None:
    first, second = paced_for_throughput(), paced_for_throughput()
    first.__enter__()
    assert gc.get_threshold() == (YOUNG, 10, 10)
    second.__enter__()
    first.__exit__(None, None, None)  # the first gateway stops while the second runs
    assert gc.get_threshold() == (YOUNG, 10, 10)
    second.__exit__(None, None, None)
    assert gc.get_threshold() == default_pace


def test_the_pace_comes_back_after_an_error(default_pace: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), paced_for_throughput():
        raise RuntimeError("the gateway failed")
    assert gc.get_threshold() == default_pace
