"""The ack path: what the broker acknowledged or refused, until the outbox records it.

PUBACKs arrive one by one on the event loop; recording each in the outbox
would cost a database round trip per message, so they are gathered here and
written every ``ack_interval`` and whenever a connection ends.
"""

from __future__ import annotations

import asyncio
import logging

from tidegate.errors import TidegateError
from tidegate.outbox import AsyncOutbox, UplinkOutbox
from tidegate.uplink.batches import Message
from tidegate.uplink.status import PublisherStatus
from tidegate.wording import count

log = logging.getLogger(__name__)


class Deliveries:
    """Acknowledged and refused outbox rows, not yet recorded."""

    def __init__(self, outbox: AsyncOutbox | UplinkOutbox, status: PublisherStatus) -> None:
        self.outbox = outbox
        self.status = status
        self._acked: list[int] = []
        self._acked_bytes = 0
        self._rejected: list[tuple[list[int], str]] = []
        self._expired: list[int] = []
        self._too_old: list[int] = []

    def acked(self, msg: Message) -> None:
        """The broker acknowledged ``msg``: its rows may be deleted."""
        self._acked.extend(msg.ids)
        self._acked_bytes += msg.size
        self.status.events_delivered += len(msg.ids)
        self.status.messages_delivered += 1

    def refused(self, ids: list[int], reason: str) -> None:
        """These rows are poison: they go to the dead letters with ``reason``."""
        self._rejected.append((ids, reason))

    def expired(self, ids: list[int]) -> None:
        """These rows are past their route's ``expire_after``: dropped, and counted."""
        self._expired += ids

    def too_old(self, ids: list[int]) -> None:
        """These rows are past the uplink's ``max_event_age``: given up for it."""
        self._too_old += ids

    async def flush(self) -> None:
        """Record acks and refusals in the outbox. A failure keeps them for the next try:
        an ack that is lost would make the event be sent again after a restart."""
        acked, self._acked = self._acked, []
        acked_bytes, self._acked_bytes = self._acked_bytes, 0
        rejected, self._rejected = self._rejected, []
        expired, self._expired = self._expired, []
        too_old, self._too_old = self._too_old, []
        try:
            if acked:
                # First (a failing drop must not hold acks back); shielded: cancelling
                # the publisher must not cancel a queued ack.
                await asyncio.shield(self.outbox.ack(acked, acked_bytes))
                acked = []
            if too_old:
                await asyncio.shield(self.outbox.give_up(too_old))
                self.status.events_too_old += len(too_old)
                log.info(
                    "%s older than the uplink's max_event_age: not sent",
                    count(len(too_old), "event"),
                )
                too_old = []
            if expired:
                gone = await asyncio.shield(self.outbox.drop_route_expired(expired))
                self.status.events_expired += gone
                if gone:
                    log.info("%s past their route's expire_after: dropped", count(gone, "event"))
                expired = []
            while rejected:
                ids, reason = rejected[0]
                moved = await asyncio.shield(self.outbox.reject(ids, reason))
                rejected.pop(0)
                self.status.events_rejected += moved
                log.error("%s moved to dead letters: %s", count(moved, "event"), reason)
        except TidegateError as exc:
            self._acked[:0] = acked
            self._acked_bytes += acked_bytes if acked else 0
            self._rejected[:0] = rejected
            self._expired[:0] = expired
            self._too_old[:0] = too_old
            self.status.last_error = str(exc)
            log.error("could not record deliveries in the outbox (%s); will retry", exc)

    async def flush_every(self, interval: float) -> None:
        """Flush every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.flush()
