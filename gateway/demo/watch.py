"""A subscriber that counts what reaches the broker (the demo's proof of delivery).

Built on aiomqtt: a small typed asyncio client is the right tool for a
subscriber; the publisher speaks MQTT itself (``tidegate.mqtt.wire``) for throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiomqtt
import orjson


@dataclass(slots=True)
class WatchCounts:
    messages: int = 0
    """Messages that carry events."""
    events: int = 0
    status: int = 0
    """The gateway's own status messages (online, and the broker's offline will): not
    events, so not in ``events`` or ``messages``, which a user compares with delivered."""
    connected: bool = False


async def watch(
    host: str, port: int, topic: str, counts: WatchCounts, status_topic: str | None = None
) -> None:
    """Count messages and events under ``topic``, and apart from them the messages on
    ``status_topic``, until cancelled; reconnect if needed."""
    while True:
        try:
            async with aiomqtt.Client(host, port, identifier=None) as client:
                await client.subscribe(topic, qos=1)
                counts.connected = True
                async for message in client.messages:
                    if status_topic is not None and message.topic.matches(status_topic):
                        counts.status += 1
                        continue
                    counts.messages += 1
                    payload = message.payload
                    if isinstance(payload, bytes | bytearray) and payload[:1] == b"[":
                        with contextlib.suppress(orjson.JSONDecodeError):
                            counts.events += len(orjson.loads(payload))
                            continue
                    counts.events += 1
        except aiomqtt.MqttError:
            counts.connected = False
            await asyncio.sleep(1.0)
