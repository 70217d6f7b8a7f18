"""The outbox on its own thread: ``AsyncOutbox`` runs every ``Outbox`` call on one
dedicated worker thread, so SQLite (and the rare fsync) never blocks the event loop,
and the outbox is only ever used from one thread. It is all the pipeline and the
publisher use of the outbox: ``AsyncOutbox.create`` makes the store behind it.

A start on a disk too full to open the outbox on (``OutboxNoSpace``) does not end
the gateway: ``open`` returns with the outbox unavailable (``waiting`` says why),
logs it once, and tries again every RETRY_OPEN seconds while the free space grows.
Meanwhile commits fail at once (the pipeline holds events in memory, as for any
failing commit), memory drops are counted in the ledger
(``tidegate.outbox.waiting``), and the publisher waits (``until_open``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from tidegate.errors import BufferError_
from tidegate.outbox.clock import UPLINK_MAX_AGE
from tidegate.outbox.disk import OutboxNoSpace, free_bytes
from tidegate.outbox.limits import Durability, OutboxLimits
from tidegate.outbox.store import Outbox
from tidegate.outbox.waiting import DropsWhileClosed, show_last_known

if TYPE_CHECKING:
    from tidegate.clock import ClockWatcher
    from tidegate.outbox.dead import DeadInput
    from tidegate.outbox.delivery import Row
    from tidegate.outbox.stats import OutboxStats
    from tidegate.outgoing import Outgoing

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

RETRY_OPEN = 5.0
"""Seconds between tries to open an outbox the disk had no room for."""
FORCE_RETRY = 60.0
"""A try at least this often, even if the free space did not grow (it may be freed
inside other files' reservations, or by a quota)."""


class AsyncOutbox:
    """Runs an Outbox on a dedicated thread so SQLite never blocks the event loop."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self.waiting: str | None = None
        """Why the outbox is not open (the disk is full); None once it is."""
        self.no_space = False
        """Whether the last try to open it failed for lack of space."""
        self._opened = asyncio.Event()
        """Set when an outbox that was waiting for room opens."""
        self._retry: asyncio.Task[None] | None = None
        self._drops = DropsWhileClosed(outbox)

    @classmethod
    def create(
        cls,
        path: Path,
        gateway: str,
        durability: Durability = "batch",
        limits: OutboxLimits | None = None,
        clock: ClockWatcher | None = None,
        *,
        uplinks: Sequence[str] = (),
    ) -> AsyncOutbox:
        """The facade of a new (not yet open) outbox at ``path``, read by ``uplinks``
        (more than one: each from its own position, ``tidegate.outbox.shares``)."""
        return cls(Outbox(path, gateway, durability, limits, clock, uplinks=uplinks))

    def for_uplink(self, name: str) -> AsyncOutbox | UplinkOutbox:
        """What uplink ``name``'s publisher reads and acknowledges: the outbox itself,
        or with several uplinks, its view from that uplink's position."""
        return self if self.outbox.shares is None else UplinkOutbox(self, name)

    @property
    def stats(self) -> OutboxStats:
        return self.outbox.stats

    @property
    def gateway(self) -> str:
        """The gateway id its events carry."""
        return self.outbox.gateway

    @property
    def next_id(self) -> int:
        """The row id the next accepted event gets: every event accepted so far has a
        lower one. Read from the event loop: the outbox thread replaces the int whole,
        after the commit that used the ids below it."""
        return self.outbox.next_id

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run any Outbox method (or function of it) on the outbox thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def open(self) -> None:
        """Open the outbox; on a disk without room for it, return with it unavailable
        (and keep trying). Any other failure is raised: the gateway does not start."""
        try:
            await self.call(self.outbox.open)
        except OutboxNoSpace as exc:
            self._opened.clear()
            self.waiting, self.no_space = str(exc), True
            log.error(
                "%s; the gateway runs without it, holds events in memory and opens it "
                "once the disk has room (tried every %.0f s)",
                exc,
                RETRY_OPEN,
            )
            await self.call(show_last_known, self.outbox)
            self._retry = asyncio.create_task(self._open_when_room(), name="outbox-open")

    async def _open_when_room(self) -> None:
        since = last_try = time.monotonic()
        directory = self.outbox.path.parent
        tried_at_free = free_bytes(directory)
        while True:
            await asyncio.sleep(RETRY_OPEN)
            free = free_bytes(directory)
            # Each try writes what it can (an upgrade rewrites the whole file): only
            # when the disk gained room, or now and then.
            grown = free is None or tried_at_free is None or free > tried_at_free
            if not grown and time.monotonic() - last_try < FORCE_RETRY:
                continue
            last_try, tried_at_free = time.monotonic(), free
            try:
                await self.call(self.outbox.open)
            except BufferError_ as exc:
                # Another reason (unlikely: the lock stays ours) is said once, and tried
                # again all the same: the gateway runs, and status shows why.
                if str(exc) != self.waiting and not isinstance(exc, OutboxNoSpace):
                    log.error("%s; trying again in %.0f s", exc, RETRY_OPEN)
                self.waiting, self.no_space = str(exc), isinstance(exc, OutboxNoSpace)
                continue
            break
        await self.call(self._drops.opened)
        self.waiting, self.no_space = None, False
        self._opened.set()
        log.warning(
            "the outbox %s is open: the disk has room again after %.0f s",
            self.outbox.path,
            time.monotonic() - since,
        )

    async def until_open(self, stop: asyncio.Event) -> bool:
        """Wait for the outbox to be open (True), or for ``stop`` (False)."""
        if self.waiting is None:
            return True
        waits = [asyncio.ensure_future(self._opened.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        return self.waiting is None and not stop.is_set()

    def check_open(self) -> None:
        """OutboxNoSpace (or why else) while the outbox is not open."""
        if self.waiting is not None:
            raise (OutboxNoSpace if self.no_space else BufferError_)(self.waiting)

    async def put(self, items: Sequence[Outgoing]) -> int:
        self.check_open()
        return await self.call(self.outbox.put, items)

    async def take(self, limit: int, cursors: Sequence[int] = (0, 0, 0)) -> list[Row]:
        self.check_open()
        return await self.call(self.outbox.take, limit, cursors)

    async def ack(self, ids: Sequence[int], payload_bytes: int | None = None) -> int:
        return await self.call(self.outbox.ack, ids, payload_bytes)

    async def reject(self, ids: Sequence[int], reason: str, stage: str = "publish") -> int:
        return await self.call(self.outbox.reject, ids, reason, stage)

    async def drop_route_expired(self, ids: Sequence[int]) -> int:
        """Events past their route's ``expire_after``: deleted and counted."""
        return await self.call(self.outbox.drop_route_expired, ids)

    async def give_up(self, ids: Sequence[int]) -> int:
        """Past the uplink's ``max_event_age``: with one uplink, deleted and counted."""
        return await self.call(self.outbox.drop_route_expired, ids, UPLINK_MAX_AGE)

    async def dead_letter_input(self, letters: Sequence[DeadInput]) -> None:
        self.check_open()
        await self.call(self.outbox.dead_letter_input, letters)

    async def purge_expired(self, now: float) -> int:
        """Drop events older than ``max_age``; only on a trusted clock."""
        return await self.call(self.outbox.purge_expired, now)

    async def correct_clock(self, delta: float) -> int:
        """Shift this boot's undelivered events by a measured wall-clock step."""
        return await self.call(self.outbox.correct_clock, delta)

    async def note_memory_drops(self, n: int) -> None:
        """Count events dropped from memory at once: in the outbox's ledger, open or not."""
        if n > 0:
            await self.call(self._drops.note, n)

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        try:
            await self.call(self.outbox.close)
        finally:
            self._executor.shutdown(wait=True)


class UplinkOutbox:
    """One of several uplinks' view of the outbox: what the publisher calls."""

    def __init__(self, outbox: AsyncOutbox, uplink: str) -> None:
        shares = outbox.outbox.shares
        assert shares is not None
        self.outbox = outbox
        self.uplink = uplink
        self._shares = shares

    @property
    def gateway(self) -> str:
        return self.outbox.gateway

    @property
    def next_id(self) -> int:
        return self.outbox.next_id

    async def until_open(self, stop: asyncio.Event) -> bool:
        return await self.outbox.until_open(stop)

    async def take(self, limit: int, cursors: Sequence[int] = (0, 0, 0)) -> list[Row]:
        """As ``AsyncOutbox.take``, for this uplink: read on past what it has done or what
        is not routed to it, one read per call on the outbox thread (commits go on
        between them), until rows for it are found or there are no more."""
        self.outbox.check_open()
        after: list[int] | None = None
        while True:
            rows, after, more = await self.outbox.call(
                self._shares.take, self.uplink, limit, cursors, after
            )
            if rows or not more:
                return rows

    async def ack(self, ids: Sequence[int], payload_bytes: int | None = None) -> int:
        """The broker has ``ids``; returns how many left the outbox (done everywhere)."""
        return await self.outbox.call(self._shares.ack, self.uplink, ids)

    async def reject(self, ids: Sequence[int], reason: str, stage: str = "publish") -> int:
        return await self.outbox.call(self._shares.reject, self.uplink, ids, reason, stage)

    async def drop_route_expired(self, ids: Sequence[int]) -> int:
        """Past their route's ``expire_after``: gone for every uplink (``UplinkShares.expire``)."""
        return await self.outbox.call(self._shares.expire, self.uplink, ids)

    async def give_up(self, ids: Sequence[int]) -> int:
        """Past this uplink's ``max_event_age``: done for it (``UplinkShares.give_up``)."""
        return await self.outbox.call(self._shares.give_up, self.uplink, ids)

    async def waiting(self) -> int:
        """Events stored after this uplink's position (``UplinkShares.waiting``)."""
        return await self.outbox.call(self._shares.waiting, self.uplink)
