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


class CommandLink:
    """Commands on ``<base>/+`` of one uplink, for one command service."""

    def __init__(self, service: CommandService, uplink: str, base: str, qos: int) -> None:
        from tidegate.commands.service import Inbox  # noqa: PLC0415 - only with commands

        self._service = service
        self._client: WireClient | None = None
        self._qos = qos
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

    def reply(self, topic: str, payload: bytes, properties: bytes) -> bool:
        """Publish a result; False while there is no connection (the audit keeps it)."""
        client = self._client
        if client is None:
            return False
        return client.publish(topic, payload, self._qos, False, properties) > 0
