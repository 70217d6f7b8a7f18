"""The queue between drivers and the acceptor holds a bounded number of events, not
only of batches: a batch may be one reading or a thousand."""

from __future__ import annotations

import asyncio

from tidegate.acceptor import DriverQueue
from tidegate.event import Event, new_event


def batch(n: int) -> list[Event]:
    return [new_event("s", "x", i) for i in range(n)]


def test_a_put_waits_while_the_queued_events_reach_the_bound() -> None:
    async def scenario() -> None:
        queue = DriverQueue(max_batches=64, max_events=1000)
        await queue.put(batch(600))
        await queue.put(batch(600))  # the bound is checked before a put: one may cross it
        assert queue.full() and queue.events == 1200
        blocked = asyncio.ensure_future(queue.put(batch(1)))
        await asyncio.sleep(0)
        assert not blocked.done()
        assert len(queue.get_nowait()) == 600
        await asyncio.wait_for(blocked, 5)  # a get makes room
        assert queue.events == 601

    asyncio.run(scenario())


def test_many_small_batches_are_bounded_by_count() -> None:
    queue = DriverQueue(max_batches=3, max_events=1000)
    for _ in range(3):
        queue.put_nowait(batch(1))
    assert queue.full() and queue.events == 3


def test_a_batch_larger_than_the_bound_still_goes_in_alone() -> None:
    queue = DriverQueue(max_batches=64, max_events=100)
    queue.put_nowait(batch(500))
    assert queue.full()
    assert len(queue.get_nowait()) == 500 and queue.events == 0 and not queue.full()
