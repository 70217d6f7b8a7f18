"""What the ``mqtt`` driver and its two kinds of broker link share, without paho.

``wire_link.WireLink`` (tidegate's own MQTT code) receives QoS 0 and 1
subscriptions; ``link.BrokerLink`` (paho-mqtt) stays for a subscription at QoS 2.
Both hand on messages that look like ``Arrival`` and fail to connect with
``ConnectFailed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from tidegate.drivers.mqtt.config import MqttInputConfig
from tidegate.errors import ActionError, TidegateError
from tidegate.mqtt.credentials import Secret, read_password

READ_BURST = 200
"""Messages read per socket wake-up at most, so a flood cannot starve other tasks."""


class Arrival(Protocol):
    """A received message (paho's ``MQTTMessage`` or the wire subscriber's ``Message``)."""

    @property
    def topic(self) -> str:
        """Raises UnicodeDecodeError for a topic that is not UTF-8."""

    @property
    def payload(self) -> bytes | bytearray: ...

    @property
    def qos(self) -> int: ...

    @property
    def retain(self) -> bool: ...

    @property
    def mid(self) -> int: ...


OnMessage = Callable[[Arrival, int], None]
"""Takes a message and the number of the connection it came on."""


class LinkState:
    """What either link keeps of its connections: their count (an acknowledgement goes
    only to its own one), the messages received, and why the current one was lost."""

    def __init__(
        self,
        config: MqttInputConfig,
        client_id: str,
        on_message: OnMessage,
        room: Callable[[], bool],
    ) -> None:
        """``room`` says whether the driver takes more messages now (else they wait in
        the socket until its pump has had a turn)."""
        self.config = config
        self.client_id = client_id
        self.session = 0
        """Counts connections; a message's acknowledgement goes only to its own one."""
        self.arrivals = 0
        """Messages received on any connection."""
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self._on_message_cb = on_message
        self._room = room

    @property
    def broker(self) -> str:
        """``host:port``, as errors name the broker."""
        return f"{self.config.host}:{self.config.effective_port}"

    def not_connected(self) -> ActionError:
        return ActionError(f"{self.config.name}: not connected to {self.broker}")

    def connection_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            self.lost.set()


class ConnectFailed(Exception):
    """Connecting or subscribing failed; the message says why (never a secret)."""


def link_password(config: MqttInputConfig) -> Secret | None:
    try:
        return read_password(config)
    except TidegateError as exc:
        raise ConnectFailed(str(exc)) from None


def wants_paho(config: MqttInputConfig) -> bool:
    """Whether the driver needs paho's link: a QoS 2 subscription (the wire code does 0 and 1)."""
    return any(s.qos == 2 for s in config.subscriptions)
