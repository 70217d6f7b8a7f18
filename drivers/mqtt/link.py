"""The ``mqtt`` driver's connection to its broker through paho: one client at a time, on the
event loop. Used only when a subscription is at QoS 2; QoS 0 and 1 go through tidegate's
own MQTT code (``wire_link``), which has the same interface.

``connect()`` goes as far as the CONNACK, ``subscribe()`` as far as the SUBACK,
``ack()`` acknowledges what the pipeline took, ``drop()`` lets the client go,
``publish()`` publishes on it (an action) as far as the PUBACK. Each
connection has a number (``session``); a message is handed on with the number of
the connection it came on, because message ids, and so acknowledgements, belong
to one connection. ``lost`` is set when the connection fails, with the reason.

paho-mqtt is driven from the event loop by ``AsyncioPaho``
rather than through aiomqtt, and acknowledges manually. Measured on a 2-core
machine draining 100,000 queued QoS 1 messages, aiomqtt's message iterator cost
~72 µs of CPU per message against ~34 µs for paho's callback appending to a list:
aiomqtt spends a task and a thread-safe loop wake-up per message and per
acknowledgement, and has no way to hold an acknowledgement until the events are in
the pipeline. Reading up to ``READ_BURST`` messages per socket wake-up
(``BurstReader``) then brought the driver to ~27 µs and ~34k messages/s
(``./dev bench mqtt_bridge``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tidegate.drivers.mqtt.arrivals import (
    READ_BURST,
    ConnectFailed,
    LinkState,
    OnMessage,
    link_password,
)
from tidegate.drivers.mqtt.config import MqttInputConfig
from tidegate.errors import ActionError, ActionRefused, TidegateError
from tidegate.mqtt.credentials import Secret
from tidegate.mqtt.paho_bridge import AsyncioPaho
from tidegate.mqtt.tls import tls_context

__all__ = ["READ_BURST", "BrokerLink", "BurstReader", "ConnectFailed"]


class BurstReader(AsyncioPaho):
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


class BrokerLink(LinkState):
    """The driver's broker connection; see the module docstring."""

    def __init__(
        self,
        config: MqttInputConfig,
        client_id: str,
        on_message: OnMessage,
        room: Callable[[], bool],
    ) -> None:
        super().__init__(config, client_id, on_message, room)
        self._client: paho.Client | None = None
        self._bridge: AsyncioPaho | None = None
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._suback: tuple[int, asyncio.Future[list[ReasonCode]]] | None = None
        self._pubacks: dict[int, asyncio.Future[ReasonCode]] = {}
        """Our QoS 1 publishes waiting for their PUBACK, by message id."""

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
            self._connack.set_exception(ConnectFailed(f"connection closed ({reason})"))
        if self._suback is not None and not self._suback[1].done():
            self._suback[1].set_exception(ConnectFailed(message))
        self._fail_pubacks(message)
        self.connection_lost(message)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        future = self._pubacks.pop(mid, None)
        if client is self._client and future is not None and not future.done():
            future.set_result(reason)

    def _fail_pubacks(self, message: str) -> None:
        pubacks, self._pubacks = self._pubacks, {}
        for future in pubacks.values():
            if not future.done():
                future.set_exception(ConnectFailed(message))

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        if self._suback is not None and self._suback[0] == mid and not self._suback[1].done():
            self._suback[1].set_result(reasons)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.arrivals += 1
        self._on_message_cb(message, self.session)

    # --- connecting ---------------------------------------------------------------------

    def _new_client(self, password: Secret | None) -> paho.Client:
        cfg = self.config
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
                raise ConnectFailed(str(exc)) from None
            client.tls_set_context(context)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    async def connect(self) -> None:
        """Connect (up to the CONNACK); raises ``ConnectFailed``."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        try:
            client = self._new_client(link_password(cfg))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConnectFailed(f"cannot set up the client: {exc}") from None
        self.session += 1
        self._client = client
        self._bridge = BurstReader(client, loop, lambda: self.arrivals, self._room)
        self._connack = loop.create_future()
        self.lost.clear()
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
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancellation that
            # arrives as the awaited thing completes, and the driver would not stop.
            async with asyncio.timeout(cfg.connect_timeout + 1):
                await self._bridge.connect()
            async with asyncio.timeout(cfg.connect_timeout):
                reason = await self._connack
            if reason.is_failure:
                raise ConnectFailed(f"broker refused the connection: {reason}")
        except (OSError, ssl.SSLError, TimeoutError, ValueError) as exc:
            self.drop()
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        except ConnectFailed:
            self.drop()
            raise

    async def subscribe(self) -> list[str] | None:
        """(Re)subscribe every filter: the filters the broker refused, or None when the
        connection failed meanwhile (``lost`` says why).

        A broker that lost our session forgot the subscriptions; one that kept it
        starts sending the queued messages right after the CONNACK, ahead of the
        SUBACK, and the pump is already taking them.
        """
        client = self._client
        if client is None:
            return None
        topics: list[tuple[str, int]] = [(s.topic, s.qos) for s in self.config.subscriptions]
        result, mid = client.subscribe(topics)
        if result != paho.MQTT_ERR_SUCCESS or mid is None:
            self.connection_lost(f"subscribe failed: {paho.error_string(result)}")
            return None
        future: asyncio.Future[list[ReasonCode]] = asyncio.get_running_loop().create_future()
        self._suback = (mid, future)
        timeout = self.config.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                reasons = await future
        except TimeoutError:
            self.connection_lost(f"no answer to SUBSCRIBE within {timeout:g} s")
            return None
        except ConnectFailed:
            return None  # the connection is gone; _on_disconnect said so
        finally:
            self._suback = None
        return [
            topic for (topic, _), reason in zip(topics, reasons, strict=False) if reason.is_failure
        ]

    async def publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, puback_within: float
    ) -> None:
        """Publish on this connection; at QoS 1, return once the broker's PUBACK came.
        Raises ``ActionError``: not connected, no PUBACK within ``puback_within`` seconds,
        the connection lost before it, or the message refused."""
        client = self._client
        if client is None or self.lost.is_set() or not client.is_connected():
            raise self.not_connected()
        name = self.config.name
        try:
            info = client.publish(topic, payload, qos=qos, retain=retain)
        except ValueError as exc:  # a payload or topic MQTT cannot carry
            raise ActionRefused(
                f"{name}: message to {topic}: {exc}", reason="bad_arguments"
            ) from None
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ActionError(f"{name}: publish to {topic} failed: {paho.error_string(info.rc)}")
        if qos == 0:
            return
        # The PUBACK cannot have come yet: paho reads only when the event loop says so.
        future: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
        self._pubacks[info.mid] = future
        try:
            async with asyncio.timeout(puback_within):
                reason = await future
        except TimeoutError:
            raise ActionError(
                f"{name}: no PUBACK from {self.broker} within {puback_within:g} s for {topic}"
            ) from None
        except ConnectFailed as exc:
            raise ActionError(
                f"{name}: connection to {self.broker} lost before the PUBACK for {topic} "
                f"({exc}); the broker may or may not have taken the message"
            ) from None
        finally:
            self._pubacks.pop(info.mid, None)
        if reason.is_failure:
            raise ActionError(f"{name}: {self.broker} refused the message to {topic}: {reason}")

    def ack(self, acks: list[tuple[int, int, int]]) -> None:
        """Acknowledge ``(mid, qos, session)`` messages that came on the current connection.

        A message whose connection is gone was emitted anyway; a persistent session may
        deliver it again (same payload, new event ids)."""
        client = self._client
        if client is None or self.lost.is_set():
            return
        for mid, qos, session in acks:
            if session == self.session:
                client.ack(mid, qos)

    def drop(self) -> None:
        """Let the client go: a DISCONNECT if the connection still works, then the socket."""
        client, bridge = self._client, self._bridge
        self._client = None
        self._bridge = None
        self._fail_pubacks("connection closed")
        if client is not None:
            client.on_disconnect = None
            client.on_message = None
            client.on_publish = None
            if not self.lost.is_set():
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
