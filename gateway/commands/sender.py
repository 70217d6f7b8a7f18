"""Sending a command as the cloud would (``tidegate cmd send``): signed with the
config's key, published to an uplink's broker, its results collected.

On MQTT 5 the command carries a Response Topic (``<base>/result/<id>``, where a 3.1.1
gateway answers too) and Correlation Data (its id); the results are read there.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tidegate.commands.audit import FINAL
from tidegate.commands.message import signature
from tidegate.config.uplink import MqttSection
from tidegate.errors import PublishError
from tidegate.mqtt.credentials import Secret, read_password
from tidegate.mqtt.tls import tls_context


@dataclass(frozen=True, slots=True)
class Sent:
    id: str
    topic: str
    results: list[dict[str, Any]]
    """In arrival order; the last is final unless the wait ran out."""

    @property
    def final(self) -> dict[str, Any] | None:
        last = self.results[-1] if self.results else None
        return last if last is not None and last.get("status") in FINAL else None


def command_message(
    name: str,
    args: Mapping[str, Any],
    key: Secret | None,
    *,
    ident: str | None = None,
    deadline: float | None = None,
    now: float | None = None,
) -> tuple[str, bytes]:
    """The command's id and its JSON, signed when there is a key."""
    ident = ident or uuid.uuid4().hex
    doc: dict[str, Any] = {"id": ident, "args": dict(args), "ts": round(now or time.time(), 3)}
    if deadline is not None:
        doc["deadline"] = deadline
    if key is not None:
        doc["sig"] = signature(key.reveal(), name, doc)
    return ident, json.dumps(doc).encode()


async def send_command(
    uplink: MqttSection,
    base: str,
    name: str,
    args: Mapping[str, Any],
    key: Secret | None,
    *,
    wait_final: bool,
    within: float,
    deadline: float | None = None,
) -> Sent:
    """Publish the command; collect results until the final one (``wait_final``) or the
    first one, or until ``within`` seconds passed."""
    ident, payload = command_message(name, args, key, deadline=deadline)
    reply_topic = f"{base}/result/{ident}"
    v5 = uplink.protocol == "5"
    password = read_password(uplink)
    results: list[dict[str, Any]] = []
    try:
        async with aiomqtt.Client(
            uplink.host,
            uplink.effective_port,
            identifier=f"tidegate-cmd-{uuid.uuid4().hex[:8]}",
            username=uplink.username,
            password=password.reveal() if password is not None else None,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            tls_context=tls_context(uplink.tls),
            timeout=min(within, uplink.connect_timeout),
        ) as client:
            await client.subscribe(reply_topic, qos=1)
            properties = None
            if v5:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.ResponseTopic = reply_topic
                properties.CorrelationData = ident.encode()
            await client.publish(f"{base}/{name}", payload, qos=1, properties=properties)
            try:
                async with asyncio.timeout(within):
                    async for message in client.messages:
                        body = message.payload
                        if not isinstance(body, bytes | bytearray):
                            continue
                        result = json.loads(body)
                        results.append(result)
                        if not wait_final or result.get("status") in FINAL:
                            break
            except TimeoutError:
                pass
    except aiomqtt.MqttError as exc:
        raise PublishError(
            f"could not reach the broker {uplink.host}:{uplink.effective_port}: {exc}"
        ) from None
    return Sent(ident, f"{base}/{name}", results)
