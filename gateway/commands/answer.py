"""The results of one command: published on the uplink it came by (the MQTT 5 response
topic, ``<topic>/result/<id>``, or the platform's own way), kept in the audit, counted."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from tidegate.commands.audit import AuditRow, CommandAudit
from tidegate.commands.message import Command, CommandRefused, result_doc
from tidegate.commands.native import NativeReply
from tidegate.errors import BufferError_

if TYPE_CHECKING:
    from tidegate.commands.service import CommandService, Inbox

log = logging.getLogger(__name__)


def correlation_property(data: bytes | None) -> bytes:
    """MQTT 5 Correlation Data (property 9) as the wire client takes properties."""
    return b"" if data is None else b"\x09" + len(data).to_bytes(2, "big") + data


class Answer:
    """The results of one command: published on its uplink, kept in the audit, counted."""

    def __init__(
        self, service: CommandService, inbox: Inbox, *, native: NativeReply | None = None
    ) -> None:
        self._service = service
        self.uplink = inbox.uplink
        self._base = inbox.base
        self._reply = inbox.reply
        self._native = native
        """A platform's own command: answered its way, not with our result document."""
        self.seq: int | None = None

    def route(self, command: Command) -> dict[str, Any] | None:
        """Where this command's results go, as a restarted gateway can use it again
        (``tidegate.commands.config_update``); None for a platform's own command."""
        if self._native is not None:
            return None
        topic = command.response_topic or f"{self._base}/result/{command.id or '-'}"
        correlation = command.correlation.hex() if command.correlation is not None else None
        return {"seq": self.seq, "uplink": self.uplink, "topic": topic, "correlation": correlation}

    @property
    def audit(self) -> CommandAudit:
        return self._service.audit

    def _send(self, command: Command, doc: dict[str, Any]) -> None:
        if self._native is not None:
            fields = {k: v for k, v in doc.items() if k not in ("id", "command", "status")}
            messages = self._native(str(doc["status"]), fields)
            sent = all(self._reply(topic, payload, b"") for topic, payload in messages)
        else:
            payload = json.dumps(doc, separators=(",", ":"), default=str).encode()
            if command.response_topic is not None:
                topic = command.response_topic
            else:
                topic = f"{self._base}/result/{command.id or '-'}"
            sent = self._reply(topic, payload, correlation_property(command.correlation))
        if not sent:
            self._service.counters.unanswered += 1

    async def step(self, command: Command, status: str, **fields: Any) -> None:
        """A result on the way (``accepted``): published, not written to the audit (its
        row says ``received`` until the final result; one disk write less a command)."""
        self._send(command, result_doc(command, status, **fields))

    async def final(self, command: Command, status: str, **fields: Any) -> None:
        counters = self._service.counters
        if status == "done":
            counters.done += 1
        elif status in ("failed", "interrupted"):
            counters.failed += 1
        else:
            reason = str(fields.get("reason") or "refused")
            counters.refused[reason] = counters.refused.get(reason, 0) + 1
        doc = result_doc(command, status, **fields)
        if self.seq is not None:
            try:
                await self._service.audit.update(
                    self.seq, status, fields.get("reason"), _bytes(doc)
                )
            except BufferError_ as exc:  # the result still goes out: it is what happened
                log.error(
                    "command %s %s: its result is not in the audit: %s",
                    command.name,
                    command.id,
                    exc,
                )
        log.log(
            logging.INFO if status == "done" else logging.WARNING,
            "command %s %s from uplink %s: %s%s",
            command.name,
            command.id,
            self.uplink,
            status,
            f" ({fields.get('reason') or fields.get('message')})" if status != "done" else "",
        )
        self._send(command, doc)

    async def refused_untrusted(self, command: Command, exc: CommandRefused) -> None:
        """Refused before it was trusted: audited with its id only as claimed."""
        unsigned = {k: v for k, v in command.doc.items() if k != "sig"}
        self.seq = await self._service.audit.received(
            None, command.id, command.name, self.uplink, json.dumps(unsigned)
        )
        await self.final(command, "refused", reason=exc.reason, message=str(exc))

    async def repeat(self, command: Command, first: AuditRow | None) -> None:
        """A repeated id: the first one's latest result again, marked ``repeated``."""
        self._service.counters.repeated += 1
        if first is not None and first.result:
            doc = json.loads(first.result)
        else:
            doc = {"id": command.id, "command": command.name, "status": "accepted"}
        doc["repeated"] = True
        self._send(command, doc)


def _bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), default=str).encode()
