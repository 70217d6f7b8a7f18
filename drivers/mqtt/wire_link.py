"""The ``mqtt`` driver's connection to its broker on tidegate's own MQTT code
(``tidegate.mqtt.wire.subscriber``), for subscriptions at QoS 0 and 1.

The same interface and behaviour as paho's ``link.BrokerLink``: ``connect()`` goes
as far as the CONNACK, ``subscribe()`` as far as the SUBACK, ``ack()``
acknowledges what the pipeline took, ``drop()`` lets the connection go,
``publish()`` publishes on it (an action) as far as the PUBACK. Each
connection has a number (``session``); a message is handed on with the number of
the connection it came on, because message ids, and so acknowledgements, belong
to one connection. ``lost`` is set when the connection fails, with the reason.
Flow control is the subscriber's: it stops reading when ``room`` says the driver
holds enough, until the driver's pump has had a turn.

Why not paho: its receive path (a packet per ``loop_read``, a callback, an
``MQTTMessage`` with a property per field) was ~38% of the gateway's CPU on the
MQTT bridge benchmark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tidegate.drivers.mqtt.arrivals import ConnectFailed, LinkState, OnMessage, link_password
from tidegate.drivers.mqtt.config import MqttInputConfig
from tidegate.errors import ActionError, ActionRefused, TidegateError
from tidegate.mqtt import wire
from tidegate.mqtt.tls import tls_context
from tidegate.mqtt.wire.reasons import Reason
from tidegate.mqtt.wire.subscriber import Message, WireSubscriber


class WireLink(LinkState):
    """The driver's broker connection; see the module docstring."""

    def __init__(
        self,
        config: MqttInputConfig,
        client_id: str,
        on_message: OnMessage,
        room: Callable[[], bool],
    ) -> None:
        super().__init__(config, client_id, on_message, room)
        self._client: WireSubscriber | None = None

    def _on_message(self, message: Message) -> None:
        self.arrivals += 1
        self._on_message_cb(message, self.session)

    def _on_disconnect(self, reason: Reason, from_broker: bool, detail: str) -> None:
        self.connection_lost(f"connection lost: {detail}")

    async def connect(self) -> None:
        """Connect (up to the CONNACK); raises ``ConnectFailed``."""
        cfg = self.config
        password = link_password(cfg)
        try:
            tls = tls_context(cfg.tls) if cfg.tls is not None else None
        except TidegateError as exc:
            raise ConnectFailed(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise ConnectFailed(f"cannot set up the client: {exc}") from None
        self.session += 1
        self.lost.clear()
        client = self._client = WireSubscriber(
            client_id=self.client_id,
            v5=cfg.protocol == "5",
            keepalive=cfg.keepalive,
            username=cfg.username,
            password=password if cfg.username is not None else None,
            clean=not cfg.persistent_session,
            session_expiry=int(cfg.session_expiry),
            on_message=self._on_message,
            on_disconnect=self._on_disconnect,
            room=self._room,
        )
        try:
            ack = await client.connect(
                cfg.host, cfg.effective_port, tls, give_up_after=cfg.connect_timeout
            )
        except wire.ConnectFailed as exc:
            self.drop()
            raise ConnectFailed(str(exc)) from None
        if ack.reason.is_failure:
            self.drop()
            raise ConnectFailed(f"broker refused the connection: {ack.reason}")

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
        topics = [(s.topic, s.qos) for s in self.config.subscriptions]
        timeout = self.config.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                reasons = await client.subscribe(topics)
        except TimeoutError:
            self.connection_lost(f"no answer to SUBSCRIBE within {timeout:g} s")
            return None
        except wire.ConnectFailed as exc:
            self.connection_lost(f"connection lost: {exc}")
            return None
        return [
            topic for (topic, _), reason in zip(topics, reasons, strict=True) if reason.is_failure
        ]

    async def publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, puback_within: float
    ) -> None:
        """Publish on this connection; at QoS 1, return once the broker's PUBACK came.
        Raises ``ActionError``: not connected, no PUBACK within ``puback_within`` seconds,
        the connection lost before it, or the message refused."""
        client = self._client
        if client is None or self.lost.is_set():
            raise self.not_connected()
        name = self.config.name
        try:
            async with asyncio.timeout(puback_within):
                reason = await client.publish(topic, payload, qos=qos, retain=retain)
        except TimeoutError:
            raise ActionError(
                f"{name}: no PUBACK from {self.broker} within {puback_within:g} s for {topic}"
            ) from None
        except wire.ConnectFailed as exc:
            raise ActionError(
                f"{name}: connection to {self.broker} lost before the PUBACK for {topic} "
                f"({exc}); the broker may or may not have taken the message"
            ) from None
        except ValueError as exc:
            raise ActionRefused(
                f"{name}: message to {topic}: {exc}", reason="bad_arguments"
            ) from None
        if reason.is_failure:
            raise ActionError(f"{name}: {self.broker} refused the message to {topic}: {reason}")

    def ack(self, acks: list[tuple[int, int, int]]) -> None:
        """Acknowledge ``(mid, qos, session)`` messages that came on the current connection.

        A message whose connection is gone was emitted anyway; a persistent session may
        deliver it again (same payload, new event ids)."""
        client = self._client
        if client is None or self.lost.is_set():
            return
        session = self.session
        client.ack([mid for mid, qos, on in acks if on == session and qos == 1])

    def drop(self) -> None:
        """Let the connection go: a DISCONNECT if it still works, then the socket."""
        client, self._client = self._client, None
        if client is not None:
            client.close(goodbye=not self.lost.is_set())
