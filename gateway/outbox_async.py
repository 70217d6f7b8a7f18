"""The outbox on its own thread: ``AsyncOutbox`` runs every ``Outbox`` call on one
dedicated worker thread, so SQLite (and the rare fsync) never blocks the event loop,
and the outbox is only ever used from one thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from tidegate.outbox import DeadInput, Outbox, OutboxStats, Row
    from tidegate.outgoing import Outgoing

P = ParamSpec("P")
T = TypeVar("T")


class AsyncOutbox:
    """Runs an Outbox on a dedicated thread so SQLite never blocks the event loop."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")

    @property
    def stats(self) -> OutboxStats:
        return self.outbox.stats

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run any Outbox method (or function of it) on the outbox thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def open(self) -> None:
        await self.call(self.outbox.open)

    async def put(self, items: Sequence[Outgoing]) -> int:
        return await self.call(self.outbox.put, items)

    async def take(self, limit: int, cursors: Sequence[int] = (0, 0, 0)) -> list[Row]:
        return await self.call(self.outbox.take, limit, cursors)

    async def ack(self, ids: Sequence[int], payload_bytes: int | None = None) -> int:
        return await self.call(self.outbox.ack, ids, payload_bytes)

    async def reject(self, ids: Sequence[int], reason: str, stage: str = "publish") -> int:
        return await self.call(self.outbox.reject, ids, reason, stage)

    async def dead_letter_input(self, letters: Sequence[DeadInput]) -> None:
        await self.call(self.outbox.dead_letter_input, letters)

    async def close(self) -> None:
        try:
            await self.call(self.outbox.close)
        finally:
            self._executor.shutdown(wait=True)


