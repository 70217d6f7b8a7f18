"""The ``mqtt`` driver: devices that publish to a broker on the gateway itself.

ESP32 and Tasmota boards, Zigbee2MQTT and the like already publish to a local
broker. This driver subscribes to topic filters there and turns each message's
payload into events with the same parsers as the ``serial`` driver (``json``,
``kv``, ``csv``, ``regex``, ``struct``, ``raw``), taking the event source and name
from topic levels where configured. It is also the input through which tidegate is
compared with other gateways' MQTT inputs (Node-RED's mqtt-in, ThingsBoard's MQTT
connector): see ``bench/mqtt_bridge.py``.

```yaml
drivers:
  - name: site
    type: mqtt
    host: 127.0.0.1                  # the broker on the gateway (not the cloud broker)
    port: 1883
    username: tidegate
    password_file: /etc/tidegate/local-broker.password
    subscriptions:
      - topic: tele/+/SENSOR         # Tasmota: {"Time":"...","AM2301":{"Temperature":21.5,...}}
        qos: 1
        source: "{topic[1]}"         # the device's topic name: tele/kitchen/SENSOR -> kitchen
        parse:
          format: json
          fields:
            AM2301.Temperature: {name: temperature, unit: "°C"}
            AM2301.Humidity: {name: humidity, unit: "%"}
      - topic: zigbee2mqtt/+         # Zigbee2MQTT: one JSON object per device
        source: "z2m-{topic[1]}"
        parse: {format: json, unlisted: include}
      - topic: home/+/+              # one plain number per topic: home/cellar/humidity "61.2"
        source: "{topic[1]}"
        name: "{topic[2]}"
        parse: {format: csv, columns: [value], fields: {value: {}}}
      - topic: meters/+/raw          # binary: a little-endian u32 pulse count
        source: "{topic[1]}"
        parse: {format: struct, byte_order: little, fields: {pulses: {offset: 0, type: u32}}}
    reconnect_min: 500ms
    reconnect_max: 30s
```

Source and name (see ``_mqtt_topics``): ``source`` defaults to the driver's name;
``{topic[N]}`` takes topic level N (from 0), ``{topic}`` the whole topic. ``name``
defaults to the parser's field names; ``{field}`` is that name, so
``"{topic[2]}.{field}"`` prefixes it. Rendered values are cleaned into valid names.

Delivery: with ``persistent_session: true`` (the default) the driver connects with a
fixed client id and ``clean_session: false`` (MQTT 5: ``clean_start: false`` and a
``session_expiry``), so the broker keeps its subscriptions and queues QoS 1 and 2
messages while the gateway is stopped or restarting; they arrive when it is back. QoS 1 and 2
messages are acknowledged to the broker only after their events were handed to the
pipeline, so a crash before that makes the broker deliver them again (duplicates are
possible, with new event ids; loss before the hand-over is not). Because
acknowledgements wait for the pipeline, a full pipeline slows the broker's deliveries
instead of filling memory. QoS 0 messages have no such brake: at most
``max_pending`` wait, and the newest ones beyond that are dropped and counted.

The subscriptions are made again on every connect, so they survive a broker restart
whether or not the broker persists sessions. Reconnects back off exponentially with
full jitter between ``reconnect_min`` and ``reconnect_max``, like the publisher.
Retained messages that a broker replays on each subscribe are skipped unless a
subscription says ``retained: true`` (each reconnect would replay them as new
events). A payload that does not parse, or a topic that no filter matches, is counted
and handed to ``context.reject`` with the reason.

Do not subscribe to the topics the gateway itself publishes to on the same broker:
its own events would come back in a loop.

How it reads: paho-mqtt is driven from the event loop by ``AsyncioPaho`` (as the
publisher is) rather than through aiomqtt, and acknowledges manually. Measured on a
2-core machine draining 100,000 queued QoS 1 messages, aiomqtt's message iterator cost
~72 µs of CPU per message against ~34 µs for paho's callback appending to a list:
aiomqtt spends a task and a thread-safe loop wake-up per message and per
acknowledgement, and has no way to hold an acknowledgement until the events are in the
pipeline. Reading up to ``READ_BURST`` messages per socket wake-up then brought the
driver to ~27 µs and ~34k messages/s (``./dev bench mqtt_bridge``); what arrived
meanwhile is parsed and emitted as one batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import Field, field_validator, model_validator

from tidegate.config.schema import TlsSection
from tidegate.config.types import Duration, Section
from tidegate.driver import Driver, DriverConfig, DriverContext, DriverState, Emit
from tidegate.drivers.mqtt.topics import (
    MissingLevel,
    TopicError,
    TopicTemplate,
    check_filter,
    clean_name,
    filter_matches,
)
from tidegate.drivers.parsing.parse import FrameParser, FrameRejected, ParseConfig
from tidegate.errors import TidegateError
from tidegate.event import Event
from tidegate.mqtt.credentials import MqttCredentials, Secret, read_password
from tidegate.mqtt.paho_bridge import AsyncioPaho
from tidegate.mqtt.tls import tls_context

log = logging.getLogger(__name__)

MAX_BATCH = 1000
"""Events per ``emit``: the pipeline's queue holds batches of about this size."""
READ_BURST = 200
"""Messages read per socket wake-up at most, so a flood cannot starve other tasks."""
ROUTE_CACHE = 10_000
"""Distinct topics remembered with their subscription; a site has far fewer."""


class Subscription(Section):
    """One topic filter and how its messages become events."""

    topic: str = Field(
        description="MQTT topic filter, with `+` (one level) and `#` (the rest) wildcards."
    )
    qos: Literal[0, 1, 2] = Field(
        1,
        description="Subscription QoS: 1 or 2 lets the broker queue messages while the "
        "gateway is away (with `persistent_session`).",
    )
    parse: ParseConfig = Field(description="How each message payload becomes events.")
    source: str | None = Field(
        None,
        description="Event source: a template such as `{topic[1]}` (topic level 1, from 0), "
        "`{topic}` or `{driver}`, with literal text around. Default: the driver's name.",
    )
    name: str | None = Field(
        None,
        description="Event name: a template like `source`, where `{field}` is the name the "
        "parser gave. Default: the parser's names.",
    )
    retained: bool = Field(
        False,
        description="Turn retained messages, which the broker replays at every (re)subscribe, "
        "into events as well.",
    )

    @field_validator("topic")
    @classmethod
    def _valid_filter(cls, value: str) -> str:
        try:
            check_filter(value)
        except TopicError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _valid_templates(self) -> Subscription:
        levels = check_filter(self.topic)
        try:
            if self.source is not None:
                TopicTemplate(self.source, driver="x", filter_levels=levels, allow_field=False)
            if self.name is not None:
                TopicTemplate(self.name, driver="x", filter_levels=levels, allow_field=True)
        except TopicError as exc:
            raise ValueError(str(exc)) from None
        return self


class MqttInputConfig(DriverConfig, MqttCredentials):
    """Messages from a broker on the gateway, as events."""

    type: Literal["mqtt"] = Field("mqtt", description="Driver kind.")
    host: str = Field("127.0.0.1", min_length=1, description="Broker host name or address.")
    port: int | None = Field(
        None, ge=1, le=65535, description="Broker port; default 1883, or 8883 with `tls`."
    )
    protocol: Literal["3.1.1", "5"] = Field(
        "3.1.1", description="MQTT protocol version spoken to the broker."
    )
    client_id: str | None = Field(
        None,
        max_length=128,
        description="MQTT client id; default `tidegate-<gateway id>-<driver name>`. A "
        "persistent session belongs to this id: keep it fixed.",
    )
    persistent_session: bool = Field(
        True,
        description="Ask the broker to keep the subscriptions and queue QoS 1/2 messages "
        "while the gateway is away (clean_session false / clean_start false).",
    )
    session_expiry: Duration = Field(
        86400.0,
        gt=0,
        le=4294967295,
        description="MQTT 5 only: how long the broker keeps a persistent session after a "
        "disconnect (MQTT 3.1.1 brokers keep it until a clean connect).",
    )
    tls: TlsSection | None = Field(None, description="Use TLS; present (even `{}`) turns it on.")
    keepalive: Duration = Field(30.0, ge=5, le=3600, description="Keep-alive interval.")
    connect_timeout: Duration = Field(10.0, gt=0, description="Give up a connection attempt.")
    reconnect_min: Duration = Field(0.5, gt=0, description="First reconnect delay (backoff).")
    reconnect_max: Duration = Field(30.0, gt=0, description="Longest reconnect delay (cap).")
    max_pending: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="QoS 0 messages held while the pipeline is busy; newer ones are dropped "
        "(and counted) beyond this.",
    )
    subscriptions: list[Subscription] = Field(
        min_length=1, description="Topic filters to subscribe to, each with its parser."
    )

    @model_validator(mode="after")
    def _consistent(self) -> MqttInputConfig:
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("reconnect_min must not exceed reconnect_max")
        filters = [s.topic for s in self.subscriptions]
        repeated = sorted({f for f in filters if filters.count(f) > 1})
        if repeated:
            raise ValueError(f"topic filters listed twice: {repeated}")
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883


# --- per-topic routing ---------------------------------------------------------------


class _CompiledSubscription:
    """A subscription with its templates compiled and a parser per source."""

    def __init__(self, config: Subscription, driver: str) -> None:
        self.config = config
        self.levels = check_filter(config.topic)
        self.driver = driver
        self.source = (
            TopicTemplate(
                config.source, driver=driver, filter_levels=self.levels, allow_field=False
            )
            if config.source is not None
            else None
        )
        self.name = (
            TopicTemplate(config.name, driver=driver, filter_levels=self.levels, allow_field=True)
            if config.name is not None
            else None
        )
        self._parsers: dict[str, FrameParser] = {}

    def parser(self, source: str) -> FrameParser:
        parser = self._parsers.get(source)
        if parser is None:
            parser = FrameParser(self.config.parse, source)
            if len(self._parsers) < ROUTE_CACHE:
                self._parsers[source] = parser
        return parser


@dataclass(frozen=True, slots=True)
class _Route:
    """What to do with messages on one topic; computed once per topic."""

    subscription: _CompiledSubscription
    parser: FrameParser
    name: str | None
    """The events' name when the template does not use {field}."""
    name_levels: list[str] | None
    """The topic's levels when the name template uses {field}."""


@dataclass(frozen=True, slots=True)
class _Unroutable:
    """A topic whose messages are rejected, and why."""

    reason: str


def _route(subscriptions: list[_CompiledSubscription], topic: str) -> _Route | _Unroutable:
    levels = topic.split("/")
    for sub in subscriptions:
        if not filter_matches(sub.levels, levels):
            continue
        try:
            source = sub.driver
            if sub.source is not None:
                cleaned = clean_name(sub.source.render(levels, topic))
                if cleaned is None:
                    return _Unroutable(f"source '{sub.source.text}' is empty for this topic")
                source = cleaned
            name: str | None = None
            if sub.name is not None and not sub.name.uses_field:
                name = clean_name(sub.name.render(levels, topic))
                if name is None:
                    return _Unroutable(f"name '{sub.name.text}' is empty for this topic")
        except MissingLevel as exc:
            return _Unroutable(str(exc))
        field_levels = levels if sub.name is not None and sub.name.uses_field else None
        return _Route(sub, sub.parser(source), name, field_levels)
    return _Unroutable("matches no subscription (left over in a persistent session?)")


# --- the driver ----------------------------------------------------------------------


class _BurstReader(AsyncioPaho):
    """``AsyncioPaho`` that reads several messages per socket wake-up.

    paho's ``loop_read`` takes one packet; one event-loop turn (epoll, callback, the
    pump task's wake-up) per message cost more than the message itself when a backlog
    drains. Reading on while each read produced a message ends with one read that finds
    nothing (a cheap EAGAIN) and hands the pump whole bursts to parse and emit at once.
    A burst stops at ``READ_BURST`` messages, or when ``room`` says the driver holds
    enough: the rest stays in the socket until the pump has had its turn.
    """

    def __init__(
        self,
        client: paho.Client,
        loop: asyncio.AbstractEventLoop,
        arrivals: Callable[[], int],
        room: Callable[[], bool],
    ) -> None:
        super().__init__(client, loop)
        self._arrivals = arrivals
        self._room = room

    def _readable(self) -> None:
        for _ in range(READ_BURST):
            before = self._arrivals()
            if self.client.loop_read() != paho.MQTT_ERR_SUCCESS:
                return
            if self._arrivals() == before or not self._room():
                return


class _ConnectFailed(Exception):
    """Connecting or subscribing failed; the message says why (never a secret)."""


def _read_password(config: MqttInputConfig) -> Secret | None:
    try:
        return read_password(config)
    except TidegateError as exc:
        raise _ConnectFailed(str(exc)) from None


class MqttDriver(Driver):
    """Subscribes on a local broker and emits the messages' events."""

    config_type = MqttInputConfig

    def __init__(self, config: DriverConfig, context: DriverContext) -> None:
        if not isinstance(config, MqttInputConfig):
            raise TypeError(f"MqttDriver needs an MqttInputConfig, got {type(config).__name__}")
        super().__init__(config, context)
        self.settings = config
        """``config``, typed as what it is."""
        self.client_id = config.client_id or f"tidegate-{context.gateway_id}-{config.name}"
        self._subscriptions = [_CompiledSubscription(s, config.name) for s in config.subscriptions]
        self._routes: dict[str, _Route | _Unroutable] = {}
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
        self._client: paho.Client | None = None
        self._bridge: AsyncioPaho | None = None
        self._session = 0
        """Counts connections; a message's acknowledgement goes only to its own one."""
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._suback: tuple[int, asyncio.Future[list[ReasonCode]]] | None = None
        self._pending: list[tuple[paho.MQTTMessage, float, int]] = []
        self._arrivals = 0
        self._arrived = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._dropping = False

    @property
    def waiting(self) -> int:
        """Messages received and not yet parsed (the pipeline is busy with earlier ones)."""
        return len(self._pending)

    # --- rejects and health -----------------------------------------------------------

    def _reject(self, payload: bytes, reason: str) -> None:
        self.rejects += 1
        self.health.set_state(self.health.state, reason)
        self.context.reject(payload, reason)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, capped at ``reconnect_max``."""
        cfg = self.settings
        ceiling = min(cfg.reconnect_max, cfg.reconnect_min * 2 ** min(attempt, 30))
        return max(random.uniform(0, ceiling), cfg.reconnect_min / 2)

    def _connection_lost(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    # --- paho callbacks (on the event loop thread) -------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if client is self._client and self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if client is not self._client:
            return
        message = f"connection lost: {reason}"
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(_ConnectFailed(f"connection closed ({reason})"))
        if self._suback is not None and not self._suback[1].done():
            self._suback[1].set_exception(_ConnectFailed(message))
        self._connection_lost(message)

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        if self._suback is not None and self._suback[0] == mid and not self._suback[1].done():
            self._suback[1].set_result(reasons)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._arrivals += 1
        pending = self._pending
        if message.qos == 0 and len(pending) >= self.settings.max_pending:
            self.dropped += 1
            if not self._dropping:  # one error and one log line per overflow, not per message
                self._dropping = True
                text = (
                    f"pipeline busy: dropping QoS 0 messages beyond {self.settings.max_pending} "
                    "waiting"
                )
                log.warning("%s: %s", self.name, text)
                self.health.set_state(self.health.state, text)
            return
        pending.append((message, time.time(), self._session))
        if len(pending) == 1:
            self._arrived.set()

    # --- connecting ---------------------------------------------------------------------

    def _new_client(self, password: Secret | None) -> paho.Client:
        cfg = self.settings
        v5 = cfg.protocol == "5"
        kwargs: dict[str, Any] = {}
        if not v5:
            kwargs["clean_session"] = not cfg.persistent_session
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            manual_ack=True,  # acknowledged once the events are in the pipeline
            **kwargs,
        )
        client.connect_timeout = cfg.connect_timeout
        if cfg.username is not None:
            client.username_pw_set(cfg.username, password.reveal() if password else None)
        if cfg.tls is not None:
            try:
                context = tls_context(cfg.tls)
            except TidegateError as exc:
                raise _ConnectFailed(str(exc)) from None
            client.tls_set_context(context)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    async def _connect(self) -> paho.Client:
        """Connect (up to the CONNACK); raises ``_ConnectFailed``."""
        cfg = self.settings
        loop = asyncio.get_running_loop()
        try:
            client = self._new_client(_read_password(cfg))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise _ConnectFailed(f"cannot set up the client: {exc}") from None
        self._session += 1
        self._client = client
        self._bridge = _BurstReader(
            client,
            loop,
            lambda: self._arrivals,
            lambda: len(self._pending) < min(READ_BURST, cfg.max_pending),
        )
        self._connack = loop.create_future()
        self._lost.clear()
        properties: Properties | None = None
        if cfg.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = (
                int(cfg.session_expiry) if cfg.persistent_session else 0
            )
        try:
            client.connect_async(
                cfg.host,
                cfg.effective_port,
                keepalive=int(cfg.keepalive),
                clean_start=not cfg.persistent_session,
                properties=properties,
            )
            await asyncio.wait_for(self._bridge.connect(), cfg.connect_timeout + 1)
            reason = await asyncio.wait_for(self._connack, cfg.connect_timeout)
            if reason.is_failure:
                raise _ConnectFailed(f"broker refused the connection: {reason}")
        except (OSError, ssl.SSLError, TimeoutError, ValueError) as exc:
            self._drop_connection()
            raise _ConnectFailed(str(exc) or type(exc).__name__) from None
        except _ConnectFailed:
            self._drop_connection()
            raise
        return client

    async def _subscribe(self, client: paho.Client) -> None:
        """(Re)subscribe every filter; a failure ends the connection like a lost one.

        A broker that lost our session forgot the subscriptions; one that kept it
        starts sending the queued messages right after the CONNACK, ahead of the
        SUBACK, and the pump is already taking them.
        """
        topics: list[tuple[str, int]] = [
            (s.config.topic, s.config.qos) for s in self._subscriptions
        ]
        result, mid = client.subscribe(topics)
        if result != paho.MQTT_ERR_SUCCESS or mid is None:
            self._connection_lost(f"subscribe failed: {paho.error_string(result)}")
            return
        future: asyncio.Future[list[ReasonCode]] = asyncio.get_running_loop().create_future()
        self._suback = (mid, future)
        timeout = self.settings.connect_timeout
        try:
            reasons = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._connection_lost(f"no answer to SUBSCRIBE within {timeout:g} s")
            return
        except _ConnectFailed:
            return  # the connection is gone; _on_disconnect said so
        finally:
            self._suback = None
        self.refused = [
            topic for (topic, _), reason in zip(topics, reasons, strict=False) if reason.is_failure
        ]
        if self.refused:
            # The others work; a refused filter is a configuration problem, not a reason to
            # reconnect in a loop.
            text = f"broker refused the subscription to {', '.join(self.refused)}"
            log.error("%s: %s", self.name, text)
            self.health.set_state(self.health.state, text)
        self.health.set_state(DriverState.RUNNING)
        cfg = self.settings
        log.info(
            "%s: subscribed on %s:%d as %s",
            self.name,
            cfg.host,
            cfg.effective_port,
            self.client_id,
        )

    def _drop_connection(self) -> None:
        client, bridge = self._client, self._bridge
        self._client = None
        self._bridge = None
        if client is not None:
            client.on_disconnect = None
            client.on_message = None
            if not self._lost.is_set():
                # Say goodbye while the socket still works (a stop, not a failure): write
                # DISCONNECT now, the event loop will not get another turn to do it.
                with contextlib.suppress(Exception):
                    client.disconnect()
                    client.loop_write()
        if bridge is not None:
            bridge.close()
        if client is not None:
            sock = client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

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
            self._drop_connection()
            self.health.set_state(DriverState.STOPPED)

    async def _connection_loop(self, pump: asyncio.Task[None]) -> None:
        cfg = self.settings
        attempt = 0
        while True:
            try:
                client = await self._connect()
            except _ConnectFailed as exc:
                attempt += 1
                delay = self._backoff(attempt)
                text = f"broker {cfg.host}:{cfg.effective_port}: {exc}"
                if attempt == 1 or attempt % 20 == 0:
                    log.warning("%s: %s; retrying in %.1f s", self.name, text, delay)
                if attempt == 1:  # one outage is one error, however many retries
                    self.health.set_state(DriverState.RECONNECTING, text)
                else:
                    self.health.last_error = text
                await asyncio.sleep(delay)
                continue
            connected_at = time.monotonic()
            self.connects += 1
            subscribing = asyncio.create_task(self._subscribe(client))
            lost = asyncio.create_task(self._lost.wait())
            try:
                await asyncio.wait((lost, pump), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (subscribing, lost):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                self._drop_connection()
            if pump.done():
                pump.result()  # emit failed: a bug for the supervisor, not a reconnect
            reason = self._lost_reason or "connection lost"
            log.warning("%s: %s; reconnecting", self.name, reason)
            self.health.set_state(DriverState.RECONNECTING, reason)
            # A connection that drops soon after it was made (another client with our id,
            # a broker in a restart loop) keeps the backoff growing.
            held = time.monotonic() - connected_at
            attempt = 0 if held >= cfg.reconnect_max else attempt + 1
            if attempt:
                await asyncio.sleep(self._backoff(attempt))

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
                self._ack(acks)
                acks = []
        await self._emit(emit, batch)
        self._ack(acks)

    async def _emit(self, emit: Emit, batch: list[Event]) -> None:
        if batch:
            await emit(batch)
            self.health.count(len(batch))

    def _ack(self, acks: list[tuple[int, int, int]]) -> None:
        # Only on the connection a message came on: message ids are per connection. A
        # message whose connection is gone was emitted anyway; a persistent session may
        # deliver it again (same payload, new event ids).
        client = self._client
        if client is None or self._lost.is_set():
            return
        for mid, qos, session in acks:
            if session == self._session:
                client.ack(mid, qos)

    def _events(self, message: paho.MQTTMessage, received: float, out: list[Event]) -> None:
        """Append the events of one message to ``out`` (or reject it)."""
        payload = bytes(message.payload)
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._reject(payload, "topic is not valid UTF-8")
            return
        route = self._routes.get(topic)
        if route is None:
            if len(self._routes) >= ROUTE_CACHE:
                self._routes.clear()
            route = self._routes[topic] = _route(self._subscriptions, topic)
        if isinstance(route, _Unroutable):
            self._reject(payload, f"topic '{topic}': {route.reason}")
            return
        if message.retain and not route.subscription.config.retained:
            self.retained_skipped += 1
            return
        try:
            events = route.parser.parse(payload, received)
        except FrameRejected as exc:
            self._reject(payload, f"topic '{topic}': {exc}")
            return
        except Exception as exc:  # a parser bug must not take the subscription down
            log.exception("%s: parser failed on %r", self.name, payload[:64])
            self._reject(payload, f"topic '{topic}': parser error: {exc!r}")
            return
        if route.name is not None:
            name = route.name
            events = [
                Event(e.source, name, e.value, e.time, e.id, e.seq, e.unit, e.tags) for e in events
            ]
        elif route.name_levels is not None:
            template = route.subscription.name
            assert template is not None
            events = [
                Event(
                    e.source,
                    clean_name(template.render(route.name_levels, topic, e.name)) or e.name,
                    e.value,
                    e.time,
                    e.id,
                    e.seq,
                    e.unit,
                    e.tags,
                )
                for e in events
            ]
        out += events


DRIVER = MqttDriver
