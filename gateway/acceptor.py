"""Accepting events: driver batches → the rule stage → group commits into the outbox.

Drivers hand batches to a bounded queue (``emit`` awaits while it is full:
that is the backpressure). The accept loop routes each batch through the rule
stage, ticks the rules' clocks, and commits what they route in groups (at
most ``commit_max_events``, at least every ``commit_interval``). A commit the
outbox refuses (full, or failing) keeps its batch, in order, and is tried
again; while commits fail, events are held in memory up to
``memory_max_events`` and the oldest beyond that are dropped and counted.
A shutdown drains everything drivers emitted and rules hold into the outbox.

The outbox is reached through its asyncio facade only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from tidegate.clock import ClockWatcher
from tidegate.config.schema import BufferSection
from tidegate.errors import TidegateError
from tidegate.event import Event
from tidegate.ops.tap import EventTap
from tidegate.outbox import AsyncOutbox, DeadInput, OutboxFull, OutboxNoSpace
from tidegate.outgoing import Outgoing
from tidegate.payload import encode_event
from tidegate.rules.stage import RuleStage
from tidegate.wording import count, noun

log = logging.getLogger(__name__)

RETRY_INTERVAL = 0.5
"""How soon a refused or failed commit is tried again (disk space returning is
noticed within this)."""
PURGE_INTERVAL = 10.0
QUEUE_BATCHES = 64
"""Driver batches held in memory before emit blocks ..."""
QUEUE_EVENTS = 5000
"""... or as many events in them, whichever comes first: a batch holds one reading or a
thousand (measured: 64 sim batches held ~15 MB at full speed, a fifth of the RSS)."""


class DriverQueue(asyncio.Queue[Sequence[Event]]):
    """Driver batches waiting for the acceptor, bounded in batches and in events.

    Through ``_put``/``_get``/``full``, the hooks ``asyncio.LifoQueue`` and
    ``PriorityQueue`` use too: ``put`` waits while ``full``, and every ``get``
    wakes a waiting ``put``. A batch larger than the bound still goes in alone.
    """

    def __init__(self, max_batches: int, max_events: int) -> None:
        super().__init__(max_batches)
        self.max_events = max_events
        self.events = 0

    def _put(self, item: Sequence[Event]) -> None:
        super()._put(item)
        self.events += len(item)

    def _get(self) -> Sequence[Event]:
        item: Sequence[Event] = super()._get()
        self.events -= len(item)
        return item

    def full(self) -> bool:
        return self.events >= self.max_events or super().full()
DEAD_INPUT_BACKLOG = 1000
TICK_INTERVAL = 0.25


def _shifted(outgoing: Outgoing, delta: float) -> Outgoing:
    return outgoing._replace(event=replace(outgoing.event, time=outgoing.event.time + delta))


@dataclass(slots=True)
class PipelineStats:
    events_in: int = 0
    """Events drivers emitted."""
    input_rejected: int = 0
    """Raw input drivers could not turn into events (counted and dead-lettered)."""
    dead_input_overflow: int = 0
    """Rejected input counted but not stored, because too much arrived at once."""
    commit_failures: int = 0
    memory_drops: int = 0
    """Events dropped because commits failed for long and memory filled up (counted in
    the outbox at once: ``pending_drops`` until a commit succeeds, kept in its ledger)."""
    started: float = field(default_factory=time.monotonic)


class Acceptor:
    """Turns driver batches into committed outbox rows, for one gateway."""

    def __init__(
        self,
        outbox: AsyncOutbox,
        rules: RuleStage,
        *,
        buffer: BufferSection,
        gateway_id: str,
        clock: ClockWatcher,
        tap: EventTap,
        committed: Callable[[], None],
    ) -> None:
        self.outbox = outbox
        self.rules = rules
        self.buffer = buffer
        self.gateway_id = gateway_id
        self.clock = clock
        self.tap = tap
        self._committed = committed
        """Called after a commit that stored events (wakes the publisher)."""
        self.stats = PipelineStats()
        self.queue = DriverQueue(QUEUE_BATCHES, QUEUE_EVENTS)
        self._dead_input: deque[DeadInput] = deque(maxlen=DEAD_INPUT_BACKLOG)
        self._pending: list[Outgoing] = []
        self._committing: asyncio.Future[bool] | None = None
        self._committing_batch: list[Outgoing] = []
        self._failing_since: float | None = None
        self._uncorrected_step = 0.0
        """A clock step measured but not yet applied to the outbox (it failed)."""

    # -- inputs ---------------------------------------------------------------------

    def rejecter(self, source: str) -> Callable[[bytes, str], None]:
        """A driver's ``reject``: count the raw input and keep it for the dead letters."""

        def reject(raw: bytes, reason: str) -> None:
            self.stats.input_rejected += 1
            if len(self._dead_input) == self._dead_input.maxlen:
                self.stats.dead_input_overflow += 1
            self._dead_input.append(DeadInput(time.time(), "input", reason, source, bytes(raw)))

        return reject

    async def emit(self, events: Sequence[Event]) -> None:
        """A driver's ``emit``: waits while the queue is full."""
        if events:
            await self.queue.put(events)

    def add(self, routed: Sequence[Outgoing]) -> None:
        """Routed events from outside the loop (a reload's flushed windows)."""
        if routed and self.tap.active:
            self.tap.publish(routed)
        self._pending.extend(routed)

    @property
    def held_in_memory(self) -> int:
        """Events waiting for a commit (many while commits fail or the outbox waits)."""
        return len(self._pending)

    # -- routing ----------------------------------------------------------------------

    def _route(self, events: Sequence[Event], pending: list[Outgoing]) -> None:
        self.stats.events_in += len(events)
        routed = self.rules.process(events)
        if self.tap.active:
            self.tap.publish(routed)
        pending.extend(routed)
        self._collect_rule_dead_letters()

    def _tick(self) -> None:
        ticked = self.rules.tick(time.time())
        if ticked and self.tap.active:
            self.tap.publish(ticked)
        self._pending.extend(ticked)
        self._collect_rule_dead_letters()

    def _collect_rule_dead_letters(self) -> None:
        letters = self.rules.take_dead_letters()
        if letters:
            now = time.time()
            self._dead_input.extend(
                DeadInput(
                    now,
                    "rules",
                    f"rule {letter.rule}: {letter.reason}",
                    letter.event.source,
                    encode_event(letter.event, 0, self.gateway_id),
                )
                for letter in letters
            )

    # -- committing -------------------------------------------------------------------

    def _correct_for_clock_step(self, batch: list[Outgoing]) -> None:
        delta = self.clock.check()
        if delta is None:
            return
        # Only events stamped by the old clock move: a quiet source's event stamped
        # after the step is already right, and so is a device's own time.
        now = self.clock.now()
        batch[:] = [
            _shifted(o, delta)
            if o.event.time_source is None
            and abs(o.event.time - (now - delta)) < abs(o.event.time - now)
            else o
            for o in batch
        ]
        self._uncorrected_step += delta

    async def _store(self, batch: list[Outgoing]) -> None:
        self.outbox.check_open()  # not while the disk has no room to open it on
        if self._uncorrected_step:
            step = self._uncorrected_step
            corrected = await self.outbox.correct_clock(step)
            self._uncorrected_step = 0.0
            log.warning(
                "the wall clock stepped by %+.1f s; corrected the time of %s (and %d not "
                "yet committed)",
                step,
                count(corrected, "undelivered event"),
                len(batch),
            )
        if self._dead_input:
            letters = list(self._dead_input)
            self._dead_input.clear()
            try:
                await self.outbox.dead_letter_input(letters)
            except TidegateError:
                self._dead_input.extendleft(reversed(letters))  # try again next time
                raise
        if batch:
            await self.outbox.put(batch)

    async def _commit(self, batch: list[Outgoing]) -> bool:
        """Try to commit ``batch``; False (batch untouched) if the outbox cannot take it now."""
        try:
            self._correct_for_clock_step(batch)
            await self._store(batch)
        except OutboxFull:
            return False
        except TidegateError as exc:
            self.stats.commit_failures += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                if not isinstance(exc, OutboxNoSpace):  # the outbox said that one already
                    log.error(
                        "outbox commit failed (%s); holding up to %s in memory and retrying",
                        exc,
                        count(self.buffer.memory_max_events, "event"),
                    )
            return False
        if self._failing_since is not None:
            log.warning(
                "outbox commits work again after %.1f s",
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
        if batch:
            self._committed()
        return True

    async def _bound_memory(self) -> None:
        """While commits fail, keep at most memory_max_events: the oldest go, counted
        at once in the outbox (which keeps the count even if it cannot commit)."""
        excess = len(self._pending) - self.buffer.memory_max_events
        if excess > 0:
            del self._pending[:excess]
            self.stats.memory_drops += excess
            await self.outbox.note_memory_drops(excess)

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Accept and commit until cancelled; then ``drain`` finishes the job."""
        buffer = self.buffer
        interval, max_events = buffer.commit_interval, buffer.commit_max_events
        queue = self.queue
        first_at = 0.0
        # Tick before the first event: a `time: processing` rule needs its clock to
        # know a backlog delivered at start (a persistent session) is late.
        next_tick = time.monotonic()
        next_purge = time.monotonic() + PURGE_INTERVAL
        retry_at = 0.0
        holding = False  # the outbox refused the last batch: full (block) or failing
        while True:
            now = time.monotonic()
            if now >= next_tick:
                self._tick()
                next_tick = now + TICK_INTERVAL
            if now >= next_purge and buffer.max_age is not None:
                next_purge = now + PURGE_INTERVAL
                with contextlib.suppress(TidegateError):
                    await self.outbox.purge_expired(time.time())
            blocked = holding and buffer.when_full == "block" and self._failing_since is None
            if not self._pending and not blocked:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_tick - now)):
                        self._route(await queue.get(), self._pending)
                first_at = time.monotonic()
            if not blocked:
                # While commits fail, keep draining the drivers (bounded below).
                limit = buffer.memory_max_events + max_events if holding else max_events
                while len(self._pending) < limit and not queue.empty():
                    self._route(queue.get_nowait(), self._pending)
            if holding and self._failing_since is not None:
                await self._bound_memory()
            if not self._pending and not self._dead_input:
                continue
            now = time.monotonic()
            if holding and now < retry_at:
                await self._wait_for_input(retry_at - now, blocked)
                continue
            if not holding and len(self._pending) < max_events and now < first_at + interval:
                await self._wait_for_input(first_at + interval - now, blocked)
                continue
            # At most commit_max_events per commit, also when catching up after a hold:
            # one commit's WAL frames must fit beside the outbox (tidegate.outbox.disk).
            batch, self._pending = self._pending[:max_events], self._pending[max_events:]
            # Shielded: a shutdown must not abandon a batch halfway; drain waits for it.
            self._committing_batch = batch
            self._committing = asyncio.ensure_future(self._commit(batch))
            committed = await asyncio.shield(self._committing)
            self._committing = None
            if committed:
                holding = False
                first_at = time.monotonic()
            else:
                holding = True
                self._pending[:0] = batch  # keep order: the refused batch is the oldest
                retry_at = time.monotonic() + RETRY_INTERVAL

    async def _wait_for_input(self, seconds: float, blocked: bool) -> None:
        """Wait up to ``seconds``, taking one driver batch if it comes (unless blocked)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                if blocked:
                    await asyncio.Event().wait()
                self._route(await self.queue.get(), self._pending)

    async def drain(self) -> None:
        """Shutdown (the loop cancelled): everything drivers emitted and rules hold
        goes to the outbox."""
        if self._committing is not None and not await self._committing:
            # Cancelled mid-commit, and the commit was refused: the batch is still ours.
            self._pending[:0] = self._committing_batch
        pending, self._pending = self._pending, []
        while not self.queue.empty():
            self._route(self.queue.get_nowait(), pending)
        pending.extend(self.rules.flush())
        self._collect_rule_dead_letters()
        step = self.buffer.commit_max_events
        while pending:
            batch, pending = pending[:step], pending[step:]
            if not await self._commit(batch):
                lost = len(batch) + len(pending)
                log.error(
                    "shutdown: %s could not be committed (outbox full or failing) and %s "
                    "lost; counted as dropped_memory",
                    count(lost, "event"),
                    noun(lost, "is", "are"),
                )
                # Counted where a full disk cannot stop it: the outbox's ledger.
                self.stats.memory_drops += lost
                with contextlib.suppress(TidegateError):
                    await self.outbox.note_memory_drops(lost)
                break
