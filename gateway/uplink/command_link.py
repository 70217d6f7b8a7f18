"""An uplink's side of the cloud's commands: the subscription on each connection, and
the results published back on it (``tidegate.commands`` does the rest)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tidegate.mqtt.wire import WireClient
from tidegate.uplink.formats import Format

if TYPE_CHECKING:
    from tidegate.commands.service import CommandService

log = logging.getLogger(__name__)

SLOTS = 2
"""Results in flight at QoS 1 at once, at most (the rest go at QoS 0)."""


class CommandLink:
    """Commands on ``<base>/+`` of one uplink, for one command service."""

    def __init__(self, service: CommandService, uplink: str, base: str, qos: int) -> None:
        from tidegate.commands.service import Inbox  # noqa: PLC0415 - only with commands

        self._service = service
        self._client: WireClient | None = None
        self._qos = qos
        self.slots = SLOTS if qos else 0
        """The broker's Receive Maximum slots the send window leaves to results."""
        self._inflight: set[int] = set()
        self.inbox: Inbox = Inbox(uplink, base, self.reply)

    def connected(self, client: WireClient, fmt: Format) -> None:
        """A new connection: subscribe (QoS 1: a command is not lost between broker and
        us), to ``<base>/+`` and to where the uplink's format takes its platform's own."""
        self._client = client
        inbox = self.inbox
        native = fmt.command_filters()
        if native:
            client.listen(
                native,
                lambda topic, payload: self._native(fmt, topic, payload),
                lambda reason: log.warning(
                    "uplink %s: the broker refused the subscription to %s (%s): no %s "
                    "commands will arrive",
                    inbox.uplink,
                    ", ".join(native),
                    reason,
                    fmt.name,
                ),
                qos=1,
            )
        if not fmt.own_command_topic:
            return
        client.listen(
            inbox.filter,
            lambda topic, payload, props: self._service.heard(inbox, topic, payload, props),
            lambda reason: log.warning(
                "uplink %s: the broker refused the subscription to %s (%s): no commands "
                "will arrive",
                inbox.uplink,
                inbox.filter,
                reason,
            ),
            qos=1,
            with_properties=True,
        )

    def _native(self, fmt: Format, topic: str, payload: bytes) -> None:
        try:
            call = fmt.command_of(topic, payload)
        except Exception:  # a format's defect costs one message, not the connection
            log.exception(
                "uplink %s: %s could not read a command on %s", self.inbox.uplink, fmt.name, topic
            )
            return
        if call is not None:
            self._service.heard_native(self.inbox, call)

    def gone(self) -> None:
        self._client = None
        self._inflight.clear()

    def reply(self, topic: str, payload: bytes, properties: bytes) -> bool:
        """Publish a result; False while there is no connection (the audit keeps it).
        At QoS 1 while a slot is free, else at QoS 0: never beyond the broker's Receive
        Maximum, which would have it refuse a message of the outbox's window."""
        client = self._client
        if client is None:
            return False
        qos = self._qos if len(self._inflight) < self.slots else 0
        mid = client.publish(topic, payload, qos, False, properties)
        if mid > 0 and qos:
            self._inflight.add(mid)
        return mid > 0

    def answered(self, mid: int) -> None:
        """A PUBACK that was not the window's: perhaps a result's."""
        self._inflight.discard(mid)
