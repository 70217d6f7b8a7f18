"""The ``mqtt`` driver's runtime: messages in, parsed by their topic's subscription, events out.

The schema and what a user writes are in ``tidegate.drivers.mqtt.config``; the
broker connection is ``wire_link`` (tidegate's own MQTT code), or ``link`` (paho)
when a subscription is at QoS 2; the topic-to-subscription routing is ``routing``.

Messages go into a list as they arrive; a pump task, alive across connections,
parses what waits and emits it in batches of at most ``MAX_BATCH``, then
acknowledges it: QoS 1 and 2 messages are acknowledged only once their events are
in the pipeline, so a full pipeline slows the broker instead of filling memory.
QoS 0 messages have no such brake: at most ``max_pending`` wait, newer ones are
dropped and counted. What arrived while the pump was busy becomes one batch.

Actions publish on the same connection (``publish``: Tasmota's ``cmnd/.../POWER``,
Zigbee2MQTT's ``.../set``): one client id per driver, so a broker's ACL for the
gateway's client covers both directions, and no second connection to keep alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from tidegate.backoff import Backoff
from tidegate.driver import Driver, DriverContext, DriverState, Emit
from tidegate.drivers.mqtt.arrivals import READ_BURST, Arrival, ConnectFailed, wants_paho
from tidegate.drivers.mqtt.config import MqttInputConfig, Subscription
from tidegate.drivers.mqtt.routing import Router, Unroutable
from tidegate.drivers.mqtt.wire_link import WireLink
from tidegate.drivers.parsing.parse import FrameRejected, FrameSkipped, TimeReport
from tidegate.errors import ActionRefused
from tidegate.event import Event

if TYPE_CHECKING:
    from tidegate.drivers.mqtt.link import BrokerLink

__all__ = ["MqttDriver", "MqttInputConfig", "Subscription"]

log = logging.getLogger(__name__)

MAX_BATCH = 1000
"""Events per ``emit``: the pipeline's queue holds batches of about this size."""

PUBLISH_TIMEOUT = 10.0
"""Seconds ``publish`` waits for a QoS 1 message's PUBACK."""


class MqttDriver(Driver[MqttInputConfig]):
    """Subscribes on a local broker and emits the messages' events."""

    def __init__(self, config: MqttInputConfig, context: DriverContext) -> None:
        super().__init__(config, context)
        self.client_id = config.client_id or f"tidegate-{context.gateway_id}-{config.name}"
        self.router = Router(
            config.subscriptions, config.name, TimeReport(config.name, self.health.tally)
        )
        self.link: WireLink | BrokerLink
        if wants_paho(config):  # tidegate's own MQTT code receives at QoS 0 and 1 only
            from tidegate.drivers.mqtt.link import BrokerLink  # noqa: PLC0415 - paho is heavy

            self.link = BrokerLink(config, self.client_id, self._on_message, self._room)
        else:
            self.link = WireLink(config, self.client_id, self._on_message, self._room)
        self.backoff = Backoff(config.reconnect)
        self.messages = 0
        """Messages received (parsed or not)."""
        self.rejects = 0
        """Messages handed to ``context.reject``."""
        self.dropped = 0
        """QoS 0 messages dropped because ``max_pending`` were already waiting."""
        self.retained_skipped = 0
        """Retained messages not turned into events (``retained: false``)."""
        self.connects = 0
        """Successful connections (1 + reconnects)."""
        self.refused: list[str] = []
        """Topic filters the broker refused at the last subscribe (e.g. by its ACL)."""
        self.publish_timeout = PUBLISH_TIMEOUT
        """Seconds ``publish`` waits for a PUBACK."""
        self._pending: list[tuple[Arrival, float, int]] = []
        self._arrived = asyncio.Event()
        self._dropping = False

    @property
    def waiting(self) -> int:
        """Messages received and not yet parsed (the pipeline is busy with earlier ones)."""
        return len(self._pending)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish ``payload`` to ``topic`` on the driver's own connection to its broker.

        At QoS 1, returns once the broker's PUBACK came (the broker has the message; a
        device subscribed to it gets it from there). At QoS 0, once it is on its way.
        Counted in ``health.counters["published"]``.

        Raises ``ActionRefused`` (``bad_arguments``) for an empty topic, one with the
        wildcards ``+``/``#`` or a NUL, a QoS other than 0 or 1, or a message larger
        than the broker takes; ``ActionError`` when not connected to the broker, when
        no PUBACK came within ``publish_timeout`` seconds, or when the connection ended
        before it (the broker may then have the message or not), or when the broker
        refused the message (MQTT 5).
        """
        problem = topic_problem(topic)
        if problem is None and qos not in (0, 1):
            problem = f"QoS {qos}: actions publish at QoS 0 or 1"
        if problem is not None:
            raise ActionRefused(f"{self.name}: cannot publish: {problem}", reason="bad_arguments")
        await self.link.publish(topic, payload, qos, retain, self.publish_timeout)
        self.health.tally("published")

    def _reject(self, payload: bytes, reason: str) -> None:
        self.rejects += 1
        self.health.set_state(self.health.state, reason)
        self.context.reject(payload, reason)

    def _room(self) -> bool:
        return len(self._pending) < min(READ_BURST, self.config.max_pending)

    def _on_message(self, message: Arrival, session: int) -> None:
        pending = self._pending
        limit = self.config.max_pending
        if message.qos == 0 and len(pending) >= limit:
            self.dropped += 1
            if not self._dropping:  # one error and one log line per overflow, not per message
                self._dropping = True
                text = f"pipeline busy: dropping QoS 0 messages beyond {limit} waiting"
                log.warning("%s: %s", self.name, text)
                self.health.set_state(self.health.state, text)
            return
        pending.append((message, time.time(), session))
        if len(pending) == 1:
            self._arrived.set()

    async def _subscribe(self) -> None:
        refused = await self.link.subscribe()
        if refused is None:
            return  # the connection went away; the connection loop hears of it
        self.refused = refused
        if refused:
            # The others work; a refused filter is a configuration problem, not a reason to
            # reconnect in a loop.
            text = f"broker refused the subscription to {', '.join(refused)}"
            log.error("%s: %s", self.name, text)
            self.health.set_state(self.health.state, text)
        self.health.set_state(DriverState.RUNNING)
        cfg = self.config
        log.info(
            "%s: subscribed on %s:%d as %s", self.name, cfg.host, cfg.effective_port, self.client_id
        )

    # --- the run loop -------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        # The pump lives across connections: messages flow into the pipeline whatever
        # the connection logic is doing (waiting for a CONNACK or SUBACK, backing off).
        pump = asyncio.create_task(self._pump(emit), name=f"{self.name}-pump")
        try:
            await self._connection_loop(pump)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self.link.drop()
            self.health.set_state(DriverState.STOPPED)

    async def _connection_loop(self, pump: asyncio.Task[None]) -> None:
        cfg, link, backoff = self.config, self.link, self.backoff
        while True:
            try:
                await link.connect()
            except ConnectFailed as exc:
                delay = backoff.next_delay()
                text = f"broker {cfg.host}:{cfg.effective_port}: {exc}"
                if backoff.failures == 1 or backoff.failures % 20 == 0:
                    log.warning("%s: %s; retrying in %.1f s", self.name, text, delay)
                if backoff.failures == 1:  # one outage is one error, however many retries
                    self.health.set_state(DriverState.RECONNECTING, text)
                else:
                    self.health.last_error = text
                await asyncio.sleep(delay)
                continue
            connected_at = time.monotonic()
            self.connects += 1
            subscribing = asyncio.create_task(self._subscribe())
            lost = asyncio.create_task(link.lost.wait())
            try:
                await asyncio.wait((lost, pump), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (subscribing, lost):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                self.link.drop()
            if pump.done():
                pump.result()  # emit failed: a bug for the supervisor, not a reconnect
            reason = link.lost_reason or "connection lost"
            log.warning("%s: %s; reconnecting", self.name, reason)
            self.health.set_state(DriverState.RECONNECTING, reason)
            # A connection that drops soon after it was made (another client with our id,
            # a broker in a restart loop) keeps the backoff growing.
            if time.monotonic() - connected_at >= cfg.reconnect.max_delay:
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next_delay())

    async def _pump(self, emit: Emit) -> None:
        """Turn waiting messages into events and emit them, for as long as the driver runs."""
        while True:
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self._deliver(emit)

    async def _deliver(self, emit: Emit) -> None:
        """Parse everything waiting, emit it in batches, then acknowledge it."""
        taken, self._pending = self._pending, []
        self._dropping = False
        self.messages += len(taken)
        batch: list[Event] = []
        acks: list[tuple[int, int, int]] = []
        for message, received, session in taken:
            self._events(message, received, batch)
            if message.qos:
                acks.append((message.mid, message.qos, session))
            if len(batch) >= MAX_BATCH:
                await self._emit(emit, batch)
                batch = []
                self.link.ack(acks)
                acks = []
        await self._emit(emit, batch)
        self.link.ack(acks)

    async def _emit(self, emit: Emit, batch: list[Event]) -> None:
        if batch:
            await emit(batch)
            self.health.count(len(batch))

    def _events(self, message: Arrival, received: float, out: list[Event]) -> None:
        """Append the events of one message to ``out`` (or reject it)."""
        payload = bytes(message.payload)
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._reject(payload, "topic is not valid UTF-8")
            return
        route = self.router.route(topic)
        if isinstance(route, Unroutable):
            self._reject(payload, f"topic '{topic}': {route.reason}")
            return
        if message.retain and not route.subscription.config.retained:
            self.retained_skipped += 1
            return
        try:
            out += route.events(payload, topic, received)
        except FrameSkipped:  # another kind of message (`select:`): not damage
            self.health.tally("skipped")
        except FrameRejected as exc:
            self._reject(payload, f"topic '{topic}': {exc}")
        except Exception as exc:  # a parser bug must not take the subscription down
            log.exception("%s: parser failed on %r", self.name, payload[:64])
            self._reject(payload, f"topic '{topic}': parser error: {exc!r}")


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or None."""
    if not topic:
        return "the topic is empty"
    if "+" in topic or "#" in topic:
        return f"topic {topic!r} has a wildcard (+ or #): a message goes to one topic"
    if "\0" in topic:
        return f"topic {topic!r} has a NUL character"
    try:
        size = len(topic.encode())
    except UnicodeEncodeError:
        return f"topic {topic!r} is not valid UTF-8"
    if size > 0xFFFF:
        return f"the topic is {size:,} bytes long; MQTT takes 65,535"
    return None
