"""The supervisor: wires drivers → rule stage → outbox → publisher and runs them.

It owns no stage's logic. It creates the bounded queue between drivers and
the rule stage (``emit`` awaits when it is full: backpressure), runs the
group-commit loop that turns rule output into committed outbox rows, restarts
a driver that crashed, and shuts everything down in order on request:
drivers stop, the rule stage is flushed into the outbox, the last commit is
made, the publisher says ``offline`` and disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tidegate.clock import ClockWatcher
from tidegate.config.schema import GatewayConfig
from tidegate.driver import Driver, DriverContext, DriverState
from tidegate.driver_kinds import driver_types
from tidegate.errors import ConfigError, TidegateError
from tidegate.event import Event
from tidegate.mqtt.credentials import Secret, read_password
from tidegate.ops.reload import ReloadOutcome
from tidegate.ops.tap import EventTap
from tidegate.outbox.disk import OutboxNoSpace
from tidegate.outbox.store import AsyncOutbox, DeadInput, Outbox, OutboxFull, OutboxLimits
from tidegate.outgoing import Outgoing
from tidegate.payload import encode_event
from tidegate.rules.loader import load_rules_for_reload
from tidegate.rules.stage import RouteDefaults, RuleStage
from tidegate.uplink.publisher import Publisher

log = logging.getLogger(__name__)

RETRY_INTERVAL = 0.5
"""How soon a refused or failed commit is tried again (disk space returning is
noticed within this)."""
PURGE_INTERVAL = 10.0
QUEUE_BATCHES = 64
"""Driver batches (each at most ~1000 events) held in memory before emit blocks."""
DEAD_INPUT_BACKLOG = 1000
TICK_INTERVAL = 0.25
SHUTDOWN_BUDGET = 4.0


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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A point-in-time view for status lines and the control API."""

    events_in: int
    accepted: int
    delivered: int
    depth: int
    broker: str
    dead_letters: int
    input_rejected: int


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        password: Secret | None = None,
        config_path: Path | None = None,
        clock: ClockWatcher | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.stats = PipelineStats()
        gateway_id = config.gateway.id
        buffer = config.buffer
        self.clock = clock or ClockWatcher(step_threshold=buffer.clock_step)
        self.outbox = AsyncOutbox(
            Outbox(
                config.outbox_path,
                gateway_id,
                buffer.durability,
                OutboxLimits(
                    max_bytes=buffer.max_bytes,
                    when_full=buffer.when_full,
                    max_age=buffer.max_age,
                    dead_letter_max_bytes=buffer.dead_letter_max_bytes,
                ),
                self.clock,
            )
        )
        prefix = config.topic_prefix
        mqtt = config.mqtt
        self.rules = RuleStage(
            config.rules,
            RouteDefaults(
                gateway=gateway_id,
                prefix=prefix,
                topic=mqtt.topic if mqtt else "{prefix}/{source}/{name}",
                qos=mqtt.qos if mqtt else 1,
            ),
        )
        kinds = driver_types()
        self._dead_input: deque[DeadInput] = deque(maxlen=DEAD_INPUT_BACKLOG)
        self.drivers: list[Driver] = []
        for driver_config in config.drivers:
            context = DriverContext(gateway_id, self._rejecter(driver_config.name))
            self.drivers.append(kinds[driver_config.type](driver_config, context))
        self.publisher: Publisher | None = None
        if mqtt is not None:
            self.publisher = Publisher(
                mqtt,
                self.outbox,
                client_id=config.client_id,
                status_topic=f"{prefix}/status",
                password=password if password is not None else read_password(mqtt),
                ack_interval=config.buffer.commit_interval,
            )
        self._queue: asyncio.Queue[Sequence[Event]] = asyncio.Queue(QUEUE_BATCHES)
        self._pending: list[Outgoing] = []
        self._committing: asyncio.Future[bool] | None = None
        self._committing_batch: list[Outgoing] = []
        self._failing_since: float | None = None
        self._uncorrected_step = 0.0
        """A clock step measured but not yet applied to the outbox (it failed)."""
        self.ready = asyncio.Event()
        self.tap = EventTap()
        """Routed events for `tidegate tail`; costs one check while nobody listens."""

    # -- inputs ---------------------------------------------------------------------

    def _rejecter(self, source: str) -> Callable[[bytes, str], None]:
        def reject(raw: bytes, reason: str) -> None:
            self.stats.input_rejected += 1
            if len(self._dead_input) == self._dead_input.maxlen:
                self.stats.dead_input_overflow += 1
            self._dead_input.append(DeadInput(time.time(), "input", reason, source, bytes(raw)))

        return reject

    async def _emit(self, events: Sequence[Event]) -> None:
        if events:
            await self._queue.put(events)

    async def _supervise(self, driver: Driver) -> None:
        """Run a driver; if it crashes (a bug, not a device error), restart it with backoff."""
        delay = 1.0
        while True:
            try:
                await driver.run(self._emit)
                log.info("driver %s finished", driver.name)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                driver.health.set_state(DriverState.FAILED, f"{type(exc).__name__}: {exc}")
                log.exception("driver %s crashed; restarting in %.0f s", driver.name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    # -- accepting ---------------------------------------------------------------------

    def _route(self, events: Sequence[Event], pending: list[Outgoing]) -> None:
        self.stats.events_in += len(events)
        routed = self.rules.process(events)
        if self.tap.active:
            self.tap.publish(routed)
        pending.extend(routed)
        self._collect_rule_dead_letters()

    def _collect_rule_dead_letters(self) -> None:
        letters = self.rules.take_dead_letters()
        if letters:
            gateway_id = self.config.gateway.id
            now = time.time()
            self._dead_input.extend(
                DeadInput(
                    now,
                    "rules",
                    f"rule {letter.rule}: {letter.reason}",
                    letter.event.source,
                    encode_event(letter.event, 0, gateway_id),
                )
                for letter in letters
            )

    async def reload_rules(self) -> ReloadOutcome:
        """Re-read the config file's rules and swap them in between two batches.

        An invalid rule set changes nothing: the old rules keep running.
        """
        if self.config_path is None:
            return ReloadOutcome(False, "this gateway was not started from a config file")
        try:
            rules = await asyncio.to_thread(load_rules_for_reload, self.config_path)
            result = self.rules.reload(rules)
        except ConfigError as exc:
            log.error("reload refused; the old rules keep running:\n%s", "\n".join(exc.messages))
            return ReloadOutcome(
                False, "rules invalid; the old rules keep running", tuple(exc.messages)
            )
        except TidegateError as exc:
            log.error("reload refused; the old rules keep running: %s", exc)
            return ReloadOutcome(False, f"reload refused: {exc}")
        if result.outgoing and self.tap.active:
            self.tap.publish(result.outgoing)
        self._pending.extend(result.outgoing)
        summary = (
            f"rules reloaded: {len(result.kept)} kept, {len(result.added)} added, "
            f"{len(result.changed)} changed, {len(result.removed)} removed"
        )
        log.info("%s", summary)
        return ReloadOutcome(
            True,
            summary,
            ("other sections (drivers, mqtt, buffer, gateway) take effect on restart",),
        )

    async def _commit(self, batch: list[Outgoing]) -> bool:
        """Try to commit ``batch``; False (batch untouched) if the outbox cannot take it now."""
        try:
            delta = self.clock.check()
            if delta is not None:
                # Only events stamped by the old clock move: a quiet source's event
                # stamped after the step is already right.
                now = self.clock.now()
                batch[:] = [
                    _shifted(o, delta)
                    if abs(o.event.time - (now - delta)) < abs(o.event.time - now)
                    else o
                    for o in batch
                ]
                self._uncorrected_step += delta
            self.outbox.check_open()  # not while the disk has no room to open it on
            if self._uncorrected_step:
                step = self._uncorrected_step
                corrected = await self.outbox.call(self.outbox.outbox.correct_clock, step)
                self._uncorrected_step = 0.0
                log.warning(
                    "the wall clock stepped by %+.1f s; corrected the time of %d undelivered "
                    "events (and %d not yet committed)",
                    step,
                    corrected,
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
        except OutboxFull:
            return False
        except TidegateError as exc:
            self.stats.commit_failures += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                if not isinstance(exc, OutboxNoSpace):  # the outbox said that one already
                    log.error(
                        "outbox commit failed (%s); holding up to %d events in memory and "
                        "retrying",
                        exc,
                        self.config.buffer.memory_max_events,
                    )
            return False
        if self._failing_since is not None:
            log.warning(
                "outbox commits work again after %.1f s",
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
        if batch and self.publisher is not None:
            self.publisher.wake()
        return True

    async def _bound_memory(self) -> None:
        """While commits fail, keep at most memory_max_events: the oldest go, counted
        at once in the outbox (which keeps the count even if it cannot commit)."""
        excess = len(self._pending) - self.config.buffer.memory_max_events
        if excess > 0:
            del self._pending[:excess]
            self.stats.memory_drops += excess
            await self.outbox.note_memory_drops(excess)

    async def _accept_loop(self) -> None:
        buffer = self.config.buffer
        interval, max_events = buffer.commit_interval, buffer.commit_max_events
        queue = self._queue
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
                ticked = self.rules.tick(time.time())
                if ticked and self.tap.active:
                    self.tap.publish(ticked)
                self._pending.extend(ticked)
                self._collect_rule_dead_letters()
                next_tick = now + TICK_INTERVAL
            if now >= next_purge and buffer.max_age is not None:
                next_purge = now + PURGE_INTERVAL
                with contextlib.suppress(TidegateError):
                    await self.outbox.call(self.outbox.outbox.purge_expired, time.time())
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
            # Shielded: a shutdown must not abandon a batch halfway; _drain waits for it.
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
                self._route(await self._queue.get(), self._pending)

    async def _drain(self) -> None:
        """Shutdown: everything drivers emitted and rules hold goes to the outbox."""
        if self._committing is not None and not await self._committing:
            # Cancelled mid-commit, and the commit was refused: the batch is still ours.
            self._pending[:0] = self._committing_batch
        pending, self._pending = self._pending, []
        while not self._queue.empty():
            self._route(self._queue.get_nowait(), pending)
        pending.extend(self.rules.flush())
        self._collect_rule_dead_letters()
        step = self.config.buffer.commit_max_events
        while pending:
            batch, pending = pending[:step], pending[step:]
            if not await self._commit(batch):
                lost = len(batch) + len(pending)
                log.error(
                    "shutdown: %d events could not be committed (outbox full or failing) and "
                    "are lost; counted as dropped_memory",
                    lost,
                )
                # Counted where a full disk cannot stop it: the outbox's ledger.
                self.stats.memory_drops += lost
                with contextlib.suppress(TidegateError):
                    await self.outbox.note_memory_drops(lost)
                break

    @property
    def held_in_memory(self) -> int:
        """Events waiting for a commit (many while commits fail or the outbox waits)."""
        return len(self._pending)

    def publish_unbuffered(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Publish outside the outbox (metrics); False without a connected broker."""
        if self.publisher is None:
            return False
        return self.publisher.publish_unbuffered(topic, payload, qos, retain)

    # -- lifecycle --------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        ostats = self.outbox.stats
        if self.publisher is None:
            broker = "none (buffering only)"
            delivered = 0
        else:
            broker = self.publisher.status.state
            delivered = self.publisher.status.events_delivered
        return Snapshot(
            events_in=self.stats.events_in,
            accepted=ostats.accepted,
            delivered=delivered,
            depth=ostats.depth,
            broker=broker,
            dead_letters=ostats.dead_letters,
            input_rejected=self.stats.input_rejected,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down in order (within ~5 s)."""
        await self.outbox.open()
        accept = asyncio.create_task(self._accept_loop(), name="accept")
        publisher = (
            asyncio.create_task(self.publisher.run(), name="publisher") if self.publisher else None
        )
        drivers = [
            asyncio.create_task(self._supervise(d), name=f"driver:{d.name}") for d in self.drivers
        ]
        log.info(
            "gateway %s running: %d drivers, %d rules, outbox %s",
            self.config.gateway.id,
            len(self.drivers),
            len(self.config.rules),
            self.config.outbox_path,
        )
        self.ready.set()
        stopper = asyncio.create_task(stop.wait())
        try:
            # A crash of the accept loop or the publisher is a bug: surface it.
            watched = {stopper, accept} | ({publisher} if publisher else set())
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stopper.cancel()
            await self._shutdown(drivers, accept, publisher)

    async def _shutdown(
        self,
        drivers: list[asyncio.Task[None]],
        accept: asyncio.Task[None],
        publisher: asyncio.Task[None] | None,
    ) -> None:
        deadline = time.monotonic() + SHUTDOWN_BUDGET
        for task in drivers:
            task.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)
        for driver in self.drivers:
            driver.health.set_state(DriverState.STOPPED)
        accept.cancel()
        await asyncio.gather(accept, return_exceptions=True)
        try:
            async with asyncio.timeout(max(0.5, deadline - time.monotonic() - 2.0)):
                await self._drain()
        except TimeoutError:
            log.error("shutdown: the final commit did not finish in time")
        if self.publisher is not None and publisher is not None:
            await self.publisher.stop(grace=max(0.2, min(2.0, deadline - time.monotonic())))
            try:
                async with asyncio.timeout(max(0.2, deadline - time.monotonic())):
                    await asyncio.gather(publisher, return_exceptions=True)
            except TimeoutError:
                log.error("shutdown: the publisher did not stop in time")
        await self.outbox.close()
        snap = self.snapshot()
        log.info(
            "gateway stopped: %d events in, %d accepted, %d delivered, %d left in the outbox",
            snap.events_in,
            snap.accepted,
            snap.delivered,
            snap.depth,
        )
