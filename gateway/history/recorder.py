"""The history beside the pipeline: routed events in, one transaction per flush.

It listens on the pipeline's ``EventTap`` (the stream ``tidegate tail`` reads),
so the event path does nothing new: with ``history:`` off nothing subscribes,
and with it on the acceptor hands each routed batch to one more listener. On
the event loop the recorder only moves those batches into a list; turning
them into numbers, downsampling and SQLite run on its own writer thread
every ``flush_interval``. Errors of the history (a full disk) are logged and
the batch is dropped and counted: the history never stops the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tidegate.config.schema import GatewayConfig
from tidegate.errors import ConfigError
from tidegate.history.config import HistorySection
from tidegate.history.samples import Batch, SignalFilter, collect
from tidegate.history.store import HistoryStore, Tier
from tidegate.ops.tap import EventTap, TapSubscription
from tidegate.outgoing import Outgoing

log = logging.getLogger(__name__)


def history_path(config: GatewayConfig) -> Path:
    """``history.path`` or ``<data_dir>/history.db``; never the outbox file."""
    section = config.history or HistorySection()
    path = section.path or config.gateway.data_dir / "history.db"
    if path.absolute() == config.outbox_path.absolute():
        raise ConfigError([f"history.path: {path} is the outbox's file; give the history its own"])
    return path


class HistoryRecorder:
    def __init__(self, config: GatewayConfig, tap: EventTap) -> None:
        section = config.history
        assert section is not None
        self.section = section
        self.store = HistoryStore(
            history_path(config),
            section.raw,
            [Tier(t.every, t.keep) for t in section.tiers],
            section.max_bytes,
        )
        self._tap = tap
        self._filter = SignalFilter(section.signals)
        self._pending: list[Outgoing] = []
        self._subscription: TapSubscription | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="history")
        self.dropped = 0
        """Events not kept: over ``memory_max_values`` between flushes, or a failed write."""
        self.flushes = 0
        self._task: asyncio.Task[None] | None = None

    async def _in_writer(self, call: object, *args: object) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, call, *args)  # type: ignore[arg-type]

    def start(self) -> None:
        """Run as a task of the running loop until ``stop``."""
        self._task = asyncio.create_task(self.run(), name="history")

    async def run(self) -> None:
        """Open the file, then take routed events and flush them until cancelled."""
        await self._in_writer(self.store.open)
        self._subscription = self._tap.subscribe(capacity=self.section.memory_max_values)
        flusher = asyncio.create_task(self._flush_every(), name="history:flush")
        try:
            limit = self.section.memory_max_values
            while True:
                batch = await self._subscription.next_batch()
                room = limit - len(self._pending)
                if len(batch) > room:
                    self.dropped += len(batch) - max(0, room)
                    batch = batch[: max(0, room)]
                self._pending.extend(batch)
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self.section.flush_interval)
            await self.flush()

    async def flush(self) -> None:
        """Write what is held, in one transaction on the writer thread."""
        items, self._pending = self._pending, []
        if items:
            await self._in_writer(self._write, items)

    def _write(self, items: list[Outgoing]) -> None:
        batch = Batch()
        collect(items, self._filter, batch)
        try:
            self.store.write(batch, time.time())
        except Exception as exc:  # the history must not stop the gateway
            self.dropped += len(items)
            path = self.store.path
            log.warning("history: %d events not written to %s: %s", len(items), path, exc)
        else:
            self.flushes += 1

    async def stop(self) -> None:
        """The last flush (after the rule stage's final output), then close."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            if self._subscription is not None:
                self._pending.extend(await _ready(self._subscription))
            await self.flush()
        finally:
            if self._subscription is not None:
                self._tap.unsubscribe(self._subscription)
                self._subscription = None
            await self._in_writer(self.store.close)
            self._writer.shutdown(wait=True)


async def _ready(subscription: TapSubscription) -> list[Outgoing]:
    """What the subscription holds now, without waiting for more: ``next_batch``
    returns at once when it holds something, and a zero timeout ends the wait."""
    try:
        async with asyncio.timeout(0):
            return await subscription.next_batch()
    except TimeoutError:
        return []
