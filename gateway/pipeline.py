"""The supervisor: wires drivers → rule stage → outbox → publisher and runs them.

It does no stage's work. It builds the stages from the config, runs each as
a task (the accept loop of ``tidegate.acceptor``, the publisher, every driver
under ``tidegate.driver_supervisor``), swaps in reloaded rules, and shuts
everything down in order on request: drivers stop, the rule stage is flushed
into the outbox, the last commit is made, the publisher says ``offline`` and
disconnects. Stages never import the supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidegate.acceptor import Acceptor, PipelineStats
from tidegate.clock import ClockWatcher
from tidegate.config.schema import GatewayConfig
from tidegate.driver import Driver, DriverContext, DriverState
from tidegate.driver_kinds import driver_types
from tidegate.driver_supervisor import supervise
from tidegate.errors import ConfigError, TidegateError
from tidegate.mqtt.credentials import Secret, read_password
from tidegate.ops.collector import paced_for_throughput
from tidegate.ops.reload import ReloadOutcome, restart_note, restart_sections
from tidegate.ops.tap import EventTap
from tidegate.outbox import AsyncOutbox, OutboxLimits
from tidegate.remote.update import RulesUpdater
from tidegate.rules.stage import RouteDefaults, RuleStage
from tidegate.wording import count

if TYPE_CHECKING:
    from tidegate.actions.runner import ActionRunner
    from tidegate.commands.service import CommandService
    from tidegate.history.recorder import HistoryRecorder
    from tidegate.rules.config import RuleConfig
    from tidegate.uplink.publisher import Publisher

__all__ = ["Gateway", "PipelineStats", "Snapshot"]

log = logging.getLogger(__name__)

SHUTDOWN_BUDGET = 4.0


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


def _read_for_reload(config_path: Path) -> tuple[list[RuleConfig], dict[str, Any]]:
    from tidegate.rules.loader import load_rules_for_reload  # noqa: PLC0415 - only on reload

    return load_rules_for_reload(config_path), restart_sections(config_path)


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
        self._restart_sections = restart_sections(config_path) if config_path else {}
        """As the file had them at the start: a reload says which of them changed since."""
        gateway_id = config.gateway.id
        buffer = config.buffer
        self.clock = clock or ClockWatcher(step_threshold=buffer.clock_step)
        uplinks = config.all_uplinks()
        self.outbox = AsyncOutbox.create(
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
            uplinks=[u.name for u in uplinks],
        )
        prefix = config.topic_prefix
        primary = config.primary_uplink
        self.rules = RuleStage(
            config.rules,
            RouteDefaults(
                gateway=gateway_id,
                prefix=prefix,
                topic=primary.topic if primary else "{prefix}/{source}/{name}",
                # Each uplink sends at most its own QoS: the route's is the highest.
                qos=max((u.qos for u in uplinks), default=1),
                uplinks=tuple(u.name for u in uplinks),
            ),
        )
        self.publishers: list[Publisher] = []
        if uplinks:
            # Imported here: the MQTT client (and ssl with it) only for a gateway with a broker.
            from tidegate.uplink.formats.offers import offers_for  # noqa: PLC0415
            from tidegate.uplink.publisher import Publisher  # noqa: PLC0415

            self.publishers = [
                Publisher(
                    uplink,
                    self.outbox.for_uplink(uplink.name),
                    client_id=config.uplink_client_id(uplink),
                    status_topic=f"{config.uplink_prefix(uplink)}/status",
                    password=password
                    if password is not None and index == 0
                    else read_password(uplink),
                    ack_interval=config.buffer.commit_interval,
                    name=uplink.name,
                    # One uplink sends the stored routes as they are (a rule's QoS too).
                    stored_prefix=prefix if len(uplinks) > 1 else None,
                    clock_trusted=lambda: self.clock.trusted,
                    commands=offers_for(config, uplink.name),
                )
                for index, uplink in enumerate(uplinks)
            ]
        self.tap = EventTap()
        """Routed events for `tidegate tail`; costs one check while nobody listens."""
        self.history: HistoryRecorder | None = None
        if config.history is not None:  # off: nothing listens on the tap, the path is unchanged
            from tidegate.history.recorder import HistoryRecorder  # noqa: PLC0415

            self.history = HistoryRecorder(config, self.tap)
        self.acceptor = Acceptor(
            self.outbox,
            self.rules,
            buffer=buffer,
            gateway_id=gateway_id,
            clock=self.clock,
            tap=self.tap,
            committed=self._wake_publishers,
        )
        kinds = driver_types()
        self.drivers: list[Driver] = [
            kinds[c.type](c, DriverContext(gateway_id, self.acceptor.rejecter(c.name)))
            for c in config.drivers
        ]
        self.remote_rules = RulesUpdater(
            config.remote_rules,
            config_path=config_path,
            outbox_path=config.outbox_path,
            uplinks=[u.name for u in uplinks],
            reload=self.reload_rules,
            health=self.health,
        )
        """Rules updates from outside (the `rules_update` command, `tidegate config push`)."""
        self.actions: ActionRunner | None = None
        if config.actions:
            from tidegate.actions.runner import ActionRunner  # noqa: PLC0415 - only with actions

            by_name = {d.name: d for d in self.drivers}
            self.actions = ActionRunner(config.actions, by_name, self.acceptor.emit)
            self.rules.action_sink = self.actions.submit
        self.commands: CommandService | None = None
        if config.commands is not None:
            from tidegate.commands.setup import build_commands  # noqa: PLC0415 - only with commands

            self.commands = build_commands(
                config,
                actions=self.actions,
                publishers=self.publishers,
                status=self._command_status,
                rules_update=None if config.remote_rules is None else self.remote_rules,
                clock_trusted=lambda: self.clock.trusted,
            )
        self.ready = asyncio.Event()

    def _command_status(self) -> dict[str, Any]:
        """What the ``status`` command answers: the figures of ``tidegate status``'s head."""
        snap = self.snapshot()
        return {
            "gateway": self.config.gateway.id,
            "events_in": snap.events_in,
            "accepted": snap.accepted,
            "delivered": snap.delivered,
            "depth": snap.depth,
            "dead_letters": snap.dead_letters,
            "uplinks": {p.name: p.status.connected for p in self.publishers},
            "drivers": {d.name: str(d.health.state) for d in self.drivers},
        }

    @property
    def publisher(self) -> Publisher | None:
        """The first uplink's publisher (metrics go through it); None without a broker."""
        return self.publishers[0] if self.publishers else None

    def _wake_publishers(self) -> None:
        for publisher in self.publishers:
            publisher.wake()

    @property
    def stats(self) -> PipelineStats:
        return self.acceptor.stats

    @property
    def held_in_memory(self) -> int:
        """Events waiting for a commit (many while commits fail or the outbox waits)."""
        return self.acceptor.held_in_memory

    async def reload_rules(self) -> ReloadOutcome:
        """Re-read the config file's rules and swap them in between two batches.

        An invalid rule set changes nothing: the old rules keep running.
        """
        if self.config_path is None:
            return ReloadOutcome(False, "this gateway was not started from a config file")
        try:
            rules, sections = await asyncio.to_thread(_read_for_reload, self.config_path)
            if any(rule.action is not None for rule in rules):
                from tidegate.actions.checks import rule_action_problems  # noqa: PLC0415

                problems = rule_action_problems(rules, self.config.actions)
                if problems:
                    raise ConfigError(problems)
            result = self.rules.reload(rules)
        except ConfigError as exc:
            log.error("reload refused; the old rules keep running:\n%s", "\n".join(exc.messages))
            return ReloadOutcome(
                False, "rules invalid; the old rules keep running", tuple(exc.messages)
            )
        except TidegateError as exc:
            log.error("reload refused; the old rules keep running: %s", exc)
            return ReloadOutcome(False, f"{exc}; the old rules keep running")
        self.acceptor.add(result.outgoing)
        summary = (
            f"rules reloaded: {len(result.kept)} kept, {len(result.added)} added, "
            f"{len(result.changed)} changed, {len(result.removed)} removed"
        )
        note = restart_note(self._restart_sections, sections)
        log.info("%s", "; ".join((summary, *note)))
        return ReloadOutcome(True, summary, note)

    def health(self) -> str | None:
        """None when every uplink is connected and every driver running, else what is not."""
        for publisher in self.publishers:
            if not publisher.status.connected:
                return f"uplink {publisher.name} {publisher.status.state}"
        for driver in self.drivers:
            if driver.health.state is not DriverState.RUNNING:
                return f"driver {driver.name} {driver.health.state}"
        return None

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
            if len(self.publishers) > 1:
                # Delivered stays the first uplink's: a sum would count an event per uplink.
                broker = ", ".join(f"{p.name} {p.status.state}" for p in self.publishers)
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
        with paced_for_throughput():
            await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> None:
        await self.outbox.open()
        if self.commands is not None:
            await asyncio.to_thread(self.commands.audit.open)
        accept = asyncio.create_task(self.acceptor.run(), name="accept")
        if self.history is not None:
            self.history.start()  # a task of its own, stopped after the final drain
        acting = (
            asyncio.create_task(self.actions.run_queue(), name="actions")
            if self.actions is not None
            else None
        )
        publishers = [
            asyncio.create_task(p.run(), name=f"publisher:{p.name}") for p in self.publishers
        ]
        drivers = [
            asyncio.create_task(supervise(d, self.acceptor.emit), name=f"driver:{d.name}")
            for d in self.drivers
        ]
        log.info(
            "gateway %s running: %s, %s, outbox %s",
            self.config.gateway.id,
            count(len(self.drivers), "driver"),
            count(len(self.config.rules), "rule"),
            self.config.outbox_path,
        )
        self.ready.set()
        stopper = asyncio.create_task(stop.wait())
        try:
            # A crash of the accept loop or the publisher is a bug: surface it.
            watched = {stopper, accept, *publishers}
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stopper.cancel()
            # No command or rule action is started on drivers that are stopping.
            if self.commands is not None:
                await self.commands.close()
            if acting is not None:
                acting.cancel()
                await asyncio.gather(acting, return_exceptions=True)
            await self._shutdown(drivers, accept, publishers)

    async def _shutdown(
        self,
        drivers: list[asyncio.Task[None]],
        accept: asyncio.Task[None],
        publishers: list[asyncio.Task[None]],
    ) -> None:
        deadline = time.monotonic() + SHUTDOWN_BUDGET
        await self.remote_rules.close()  # a pending update is rolled back at the next start
        for task in drivers:
            task.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)
        for driver in self.drivers:
            driver.health.set_state(DriverState.STOPPED)
        accept.cancel()
        await asyncio.gather(accept, return_exceptions=True)
        try:
            async with asyncio.timeout(max(0.5, deadline - time.monotonic() - 2.0)):
                await self.acceptor.drain()
        except TimeoutError:
            log.error("shutdown: the final commit did not finish in time")
        if self.history is not None:  # after the drain: the rule stage's last output is in
            await self.history.stop()
        if publishers:
            grace = max(0.2, min(2.0, deadline - time.monotonic()))
            await asyncio.gather(*(p.stop(grace=grace) for p in self.publishers))
            try:
                async with asyncio.timeout(max(0.2, deadline - time.monotonic())):
                    await asyncio.gather(*publishers, return_exceptions=True)
            except TimeoutError:
                log.error("shutdown: the publisher did not stop in time")
        await self.outbox.close()
        if self.commands is not None:
            self.commands.audit.close()
        snap = self.snapshot()
        log.info(
            "gateway stopped: %s in, %d accepted, %d delivered, %d left in the outbox",
            count(snap.events_in, "event"),
            snap.accepted,
            snap.delivered,
            snap.depth,
        )
