from __future__ import annotations

import time
import uuid

from tidegate.ids import uuid7


def test_ids_are_rfc9562_v7_unique_and_increasing() -> None:
    ids = [uuid7() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_timestamp_is_the_given_millisecond_and_a_clock_step_back_keeps_order() -> None:
    # Later than any id made so far in this process (other tests make ids in the future).
    latest = int(uuid7().replace("-", "")[:12], 16)
    ms = max(now_ms(), latest) + 50
    first = uuid7(ms)
    assert int(first.replace("-", "")[:12], 16) == ms
    earlier = uuid7(ms - 3_600_000)  # wall clock jumped back an hour
    assert earlier > first


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    ms = now_ms() + 100
    ids = [uuid7(ms) for _ in range(5000)]  # more than the 12-bit counter holds
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
