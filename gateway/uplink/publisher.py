"""The publisher: outbox → broker, QoS 1, acknowledged before deletion.

It takes the oldest undelivered rows from the outbox, publishes them (one
event per message, or JSON arrays of up to ``events_per_message`` events that
share a topic), and acks rows to the outbox only after the broker's PUBACK
(for QoS 0: once written to the socket). At most ``max_inflight`` messages
are unacknowledged at once. When the connection drops, everything not acked
is published again from the outbox after reconnecting (same ids: duplicates
are possible, loss is not). Reconnects wait as ``mqtt.reconnect`` says
(``tidegate.backoff``). A retained ``online``/``offline`` on
``<prefix>/status`` is the birth message and the Last Will.

Each connection gets a fresh client (``tidegate.mqtt.wire``) with a clean
session: the outbox, not the client's memory, is the source of truth for what
still needs sending.
Only the broker's refusal makes a message poison (dead-lettered, not retried);
a lost connection never does: see ``tidegate.uplink.refusals``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from tidegate.backoff import Backoff
from tidegate.config.schema import MqttSection
from tidegate.errors import TidegateError
from tidegate.mqtt.credentials import Secret
from tidegate.mqtt.tls import tls_context
from tidegate.mqtt.wire import ConnectFailed, Reason, WireClient
from tidegate.outbox import AsyncOutbox, UplinkOutbox
from tidegate.uplink.brokers import BrokerList
from tidegate.uplink.client import accepts, new_client, open_connection
from tidegate.uplink.command_link import CommandLink
from tidegate.uplink.deliveries import Deliveries
from tidegate.uplink.formats.offers import CommandOffer
from tidegate.uplink.presence import Presence
from tidegate.uplink.presets.base import preset_for, when_idle
from tidegate.uplink.refusals import ConnectionRecord, RefusalTracker, defers
from tidegate.uplink.status import PublisherStatus
from tidegate.uplink.window import SendWindow

log = logging.getLogger(__name__)

__all__ = ["Publisher", "PublisherStatus"]


class Publisher:
    def __init__(
        self,
        mqtt: MqttSection,
        outbox: AsyncOutbox | UplinkOutbox,
        *,
        client_id: str,
        status_topic: str,
        password: Secret | None,
        ack_interval: float,
        name: str = "default",
        stored_prefix: str | None = None,
        clock_trusted: Callable[[], bool] = lambda: True,
        commands: tuple[CommandOffer, ...] = (),
    ) -> None:
        self._clock_trusted = clock_trusted
        """Whether the wall clock can judge an event's age (route expiry)."""
        self.name = name
        """The uplink's name (``uplinks:``; ``default`` for ``mqtt:``)."""
        self._who = "" if name == "default" else f"uplink {name}: "
        """What log lines start with: several uplinks say which."""
        self.mqtt = mqtt
        self.outbox = outbox
        self.client_id = client_id
        self._preset = preset_for(mqtt, password)
        """``mqtt.preset``: each CONNECT's password, its renewal, the topics the cloud takes."""
        self.status_topic = self._preset.status_topic(status_topic)
        self._ack_interval = ack_interval
        self.status = PublisherStatus()
        self._deliveries = Deliveries(outbox, self.status)
        self._backoff = Backoff(mqtt.reconnect)
        """Waits after failed connection attempts, longer for each one in a row."""
        self._brokers = BrokerList(
            mqtt.broker_addresses(),
            failover_after=mqtt.failover_after,
            return_after=mqtt.return_after,
            backoff=self._backoff,
            who=self._who,
        )
        self._tls_context = tls_context(mqtt.tls)
        self._max_message = mqtt.max_message_bytes
        self._this = ConnectionRecord()
        """The current connection's record: acks, quota answers, ended on purpose."""
        self._refusals = RefusalTracker()
        self._changed = asyncio.Event()
        self._caught_up = asyncio.Event()
        """Set while nothing is in flight and the last take found nothing new."""
        self._client: WireClient | None = None
        self._window = SendWindow(
            mqtt,
            self.status_topic,
            stored_prefix,
            prefix=status_topic.removesuffix("/status"),
            gateway=outbox.gateway,
            commands=commands,
        )
        self._window.format = self._preset.wrap(self._window.format)
        self._presence = Presence(self.status_topic, self._window)
        self._disconnected = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._stop_deadline = 0.0
        self.commands: CommandLink | None = None  # the cloud's commands, set by the gateway

    # -- wiring ---------------------------------------------------------------------

    def publish_unbuffered(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Publish a message that is not in the outbox (metrics); False while disconnected."""
        client = self._client
        to = self._preset.unbuffered_topic(topic)
        if client is None or not self.status.connected or to is None:
            return False
        return client.publish(to, payload, qos, retain) > 0

    def reannounce(self) -> bool:
        """The format announces itself again now (the ``rebirth`` command); False offline."""
        client = self._client
        if client is None or not self.status.connected:
            return False
        self._window.reannounce(client)
        return True

    def wake(self) -> None:
        """New rows were committed to the outbox."""
        self._caught_up.clear()
        self._changed.set()

    def _new_client(self) -> WireClient:
        return new_client(
            self.mqtt,
            client_id=self.client_id,
            will_topic=self.status_topic,
            password=self._preset.password(),
            on_publish=self._on_publish,
            on_disconnect=self._on_disconnect,
            will=self._window.will(),  # the format's (Sparkplug's NDEATH), if it has one
        )

    # -- the client's callbacks (on the event loop, from the current client only) ------

    def _on_disconnect(self, reason: Reason, from_broker: bool, detail: str) -> None:
        self._refusals.disconnected(from_broker, reason)
        if self.status.connected and not self._stopping:
            self.status.last_error = f"connection lost: {detail}"
        self._this.first_unacked = self._window.oldest()
        self._disconnected.set()
        self._changed.set()

    def _on_publish(self, mid: int, reason: Reason) -> None:
        msg = self._window.answered(mid)
        if msg is None:
            self._presence.answered(mid)
            if self.commands is not None:
                self.commands.answered(mid)
            return
        self.status.inflight = len(self._window)
        if reason.is_failure and defers(reason):
            # Not acked: the row stays in the outbox; _pump ends the connection.
            self._this.deferred += 1
            self.status.quota_exceeded += 1
        elif reason.is_failure:
            self._deliveries.refused(msg.ids, f"broker refused the message: {reason}")
        else:
            self._this.progress = True
            self._deliveries.acked(msg)
        self._changed.set()

    # -- main loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, publish, reconnect; until ``stop()`` (or cancellation).

        This task alone makes the last ack flush, after its connection is gone,
        so every PUBACK received is recorded in the outbox before it closes.
        """
        flusher = asyncio.create_task(self._deliveries.flush_every(self._ack_interval))
        try:
            while not self._stopping:
                # An outbox the disk had no room to open on: nothing to send until it opens.
                if not await self.outbox.until_open(self._stop_requested):
                    break
                try:
                    await self._connect()
                except ConnectFailed as exc:
                    if self._stopping:
                        break
                    self.status.last_error = str(exc)
                    delay = self._brokers.failed(str(exc))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop_requested.wait(), delay)
                    continue
                self._brokers.connected()
                if self._stopping:  # stop() came while connecting: sign off at once
                    await self._sign_off(self._stop_deadline)
                    break
                self._this = ConnectionRecord()
                watcher = (
                    asyncio.create_task(self._watch_first_broker())
                    if self._brokers.on_fallback
                    else None
                )
                renewal = self._preset.renewal()
                renewer = asyncio.create_task(self._renew(*renewal)) if renewal else None
                try:
                    await self._pump()
                finally:
                    for task in (watcher, renewer):
                        if task is not None:
                            task.cancel()
                    self._drop_connection()
                    await self._deliveries.flush()
                if self._stopping:
                    break
                if self._this.on_purpose:  # to the first broker, or a new login: at once
                    self.status.last_error = None
                    continue
                delay, note = self._after_connection()
                if note:
                    log.warning("%s%s; reconnecting in %.1f s", self._who, note, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            self._drop_connection()
            await self._deliveries.flush()

    async def _watch_first_broker(self) -> None:
        """On a fallback: every ``return_after``, try an MQTT connection to the first
        broker (made and closed cleanly, beside this one); once one succeeds, sign off
        here (``offline``, retained: this broker keeps no stale ``online``) and move."""
        await self._brokers.until_first_accepts(
            lambda address: accepts(
                self.mqtt,
                address,
                self._tls_context,
                client_id=self.client_id,
                password=self._preset.password(),
                will_topic=self.status_topic,
            )
        )
        self._brokers.go_back()
        self._this.on_purpose = True
        await self._sign_off(time.monotonic() + self.mqtt.connect_timeout)

    async def _renew(self, start: float, latest: float) -> None:
        """Before its login expires (an Azure SAS token), end this connection cleanly for
        the next CONNECT to log in anew (``when_idle``). What is unacked is sent again."""
        await when_idle(start, latest, self._caught_up)
        client = self._client
        if client is None or self._stopping:
            return
        log.info("renewing the login to broker %s before it expires", self.status.broker)
        self._this.on_purpose = True
        client.disconnect()

    def _after_connection(self) -> tuple[float, str]:
        """How long to wait before reconnecting, and what to log; dead-letter what was
        refused (``RefusalTracker.after``)."""
        after = self._refusals.after(self._this, self._backoff.policy, self.status.last_error)
        if after.poison is not None:
            self._deliveries.refused(after.poison.ids, after.poison.reason)
        self.status.last_error = after.last_error
        return after.delay, after.note

    async def _connect(self) -> None:
        # Acked rows must be deleted before we start again from the oldest.
        await self._deliveries.flush()
        client = self._new_client()
        self._client = client
        self._disconnected.clear()
        try:
            self.status.broker = self._brokers.name()
            await open_connection(client, self.mqtt, self._tls_context, self._brokers.current)
        except ConnectFailed:
            self._drop_connection()
            raise
        self._max_message = self.mqtt.max_message_bytes
        if client.max_packet is not None:
            # MQTT 5: the broker said how large a packet may be; keep headroom
            # for the fixed header, the topic and the properties.
            self._max_message = max(1, min(self._max_message, client.max_packet - 512))
        # One of the broker's Receive Maximum stays free for the online/offline message.
        # Rows from the outbox's next id on were accepted on this connection (the others
        # are replays, which a format may mark: Sparkplug's is_historical).
        spare = 1 + (self.commands.slots if self.commands is not None else 0)
        self._window.connected(max(1, client.receive_maximum - spare), self.outbox.next_id)
        self._presence.born(client)
        if self.commands is not None:
            self.commands.connected(client, self._window.format)
        self.status.connected = True
        self.status.since = time.monotonic()
        self.status.connects += 1
        self.status.last_error = None
        log.info("%sconnected to broker %s as %s", self._who, self.status.broker, self.client_id)

    def _drop_connection(self) -> None:
        """Forget the current client; unacked messages will be sent again from the outbox."""
        was_connected = self.status.connected
        self.status.connected = False
        if was_connected:
            self.status.since = time.monotonic()
        self._window.reset()
        self.status.inflight = 0
        client, self._client = self._client, None
        if self.commands is not None:
            self.commands.gone()
        if client is not None:
            client.abort()  # hear nothing more from it

    async def _pump(self) -> None:
        """Keep the window full until the connection ends."""
        client = self._client
        assert client is not None
        window = self._window
        while not self._disconnected.is_set():
            # Clear before looking: any ack, commit or disconnect after this wakes the wait.
            self._changed.clear()
            if self._this.deferred:
                # "Not now": send nothing more on this connection; end it cleanly (no
                # Last Will) and let the next one take the kept rows from the outbox.
                client.disconnect()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._disconnected.wait(), self.mqtt.connect_timeout)
                return
            room = window.room()
            if room:
                try:
                    rows = await self.outbox.take(window.rows_to_take(room), window.cursors)
                except TidegateError as exc:
                    self.status.last_error = str(exc)
                    log.error("cannot read the outbox (%s); retrying in 1 s", exc)
                    await asyncio.sleep(1.0)
                    continue
                if self._disconnected.is_set():
                    return
                if self._this.deferred:
                    continue  # "quota exceeded" came meanwhile: publish no more
                if rows:
                    self._caught_up.clear()
                    now = time.time() if self._clock_trusted() else None
                    error = window.fill(
                        client, rows, room, self._max_message, now=now, deliveries=self._deliveries
                    )
                    self.status.inflight = len(window)
                    if error is not None:
                        # The connection is ending (the broker's DISCONNECT came first, say):
                        # hear how, so that a refusal counts, before the client is let go.
                        self.status.last_error = error
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(
                                self._disconnected.wait(), self.mqtt.connect_timeout
                            )
                        return
                    continue
                if not window.inflight:
                    self._caught_up.set()
            await self._changed.wait()

    async def stop(self, grace: float = 2.0) -> None:
        """Graceful end: wait briefly for in-flight acks and the last commit, mark
        offline, disconnect.

        ``run()`` then returns by itself after its final ack flush.
        """
        self._stopping = True
        self._stop_deadline = time.monotonic() + grace
        self._stop_requested.set()
        self._changed.set()
        if self._client is None or not self.status.connected:
            return  # a connection attempt that succeeds after this signs off in run()
        with contextlib.suppress(TimeoutError):
            # Wait for what is in flight and for what the final commit added (the
            # rules' flushed windows), if the broker is quick: else it waits in the
            # outbox for the next start.
            await asyncio.wait_for(self._caught_up.wait(), grace / 2)
        await self._sign_off(self._stop_deadline)

    async def _sign_off(self, deadline: float) -> None:
        """Mark offline (retained) and DISCONNECT, by ``deadline`` (stop()'s grace)."""
        client = self._client
        if client is None:
            return
        await self._presence.sign_off(client, self._disconnected, deadline)
        self._disconnected.set()  # a broker that never answered: stop pumping anyway
        self._changed.set()
