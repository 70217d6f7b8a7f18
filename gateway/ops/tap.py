"""A tap on the event stream after the rule stage, for ``tidegate tail``.

The pipeline calls ``publish`` with every routed batch. With nobody
listening that costs one attribute check. Each listener has a bounded queue:
when a listener reads slower than events arrive, the newest events are
dropped for that listener and counted (it is told how many). The pipeline
never waits for a listener.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from fnmatch import fnmatchcase

from tidegate.outgoing import Outgoing

MATCH_CACHE_LIMIT = 4096
"""Distinct (source, name) pairs a subscription remembers its glob verdict for."""


class TapSubscription:
    """One listener: a glob filter on ``source`` and ``name`` and a bounded queue."""

    def __init__(self, source_glob: str, name_glob: str, capacity: int) -> None:
        self.source_glob = source_glob
        self.name_glob = name_glob
        self.capacity = capacity
        self.dropped = 0
        """Events that matched but did not fit in the queue, in total."""
        self._queue: deque[Outgoing] = deque()
        self._verdicts: dict[tuple[str, str], bool] = {}
        self._waiting = asyncio.Event()

    def matches(self, source: str, name: str) -> bool:
        key = (source, name)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = fnmatchcase(source, self.source_glob) and fnmatchcase(name, self.name_glob)
            if len(self._verdicts) >= MATCH_CACHE_LIMIT:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict

    def offer(self, items: Sequence[Outgoing]) -> None:
        queue = self._queue
        added = False
        for item in items:
            event = item.event
            if not self.matches(event.source, event.name):
                continue
            if len(queue) >= self.capacity:
                self.dropped += 1
                continue
            queue.append(item)
            added = True
        if added:
            self._waiting.set()

    async def next_batch(self) -> list[Outgoing]:
        """Wait until something is queued, then take all of it."""
        while not self._queue:
            self._waiting.clear()
            await self._waiting.wait()
        batch = list(self._queue)
        self._queue.clear()
        return batch


class EventTap:
    def __init__(self) -> None:
        self._subscriptions: list[TapSubscription] = []

    @property
    def active(self) -> bool:
        """Whether anybody listens; the pipeline may skip ``publish`` when not."""
        return bool(self._subscriptions)

    @property
    def listeners(self) -> int:
        return len(self._subscriptions)

    @property
    def dropped(self) -> int:
        """Events dropped for the current listeners because they read too slowly."""
        return sum(s.dropped for s in self._subscriptions)

    def publish(self, items: Sequence[Outgoing]) -> None:
        """Hand routed events to every listener; never blocks, never raises for a listener."""
        for subscription in self._subscriptions:
            subscription.offer(items)

    def subscribe(
        self, source_glob: str = "*", name_glob: str = "*", capacity: int = 1000
    ) -> TapSubscription:
        subscription = TapSubscription(source_glob, name_glob, capacity)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: TapSubscription) -> None:
        self._subscriptions = [s for s in self._subscriptions if s is not subscription]
