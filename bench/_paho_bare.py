"""paho-mqtt alone: a bare publish loop, QoS 1, counted at PUBACK.

Printed by ``bench/full_path.py`` as a reference beside the goal's baseline
(``bench/_wire_bare.py``: the uplink's own client, ``tidegate.mqtt.wire``, which
replaced paho in the publisher). Set up as paho was (clean session, paho's own
in-flight and queue limits off, TCP_NODELAY) and kept as full as the gateway's
send window (refilled once half of ``inflight`` is acknowledged), driven by
paho's own ``loop()`` in one thread. CPU is ``time.process_time`` of the publish
loop only (connecting is left out), in a child process of its own.

A second mode, ``asyncio``, drives the same client from an asyncio event loop
through ``tidegate.mqtt.paho_bridge.AsyncioPaho``, as the ``mqtt`` driver does.

Run alone: ``python -m bench._paho_bare loop|asyncio PORT MESSAGES PAYLOAD_BYTES
INFLIGHT PROTOCOL`` prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench._child import run_child
from bench._client_common import peak_rss_kib
from tidegate.mqtt.paho_bridge import AsyncioPaho

TOPIC = "tidegate/bench/fast/power"
"""The topic the full-path bench's gateway publishes one of its signals to."""


def _client(protocol: str) -> paho.Client:
    version = paho.MQTTv5 if protocol == "5" else paho.MQTTv311
    kwargs: dict[str, Any] = {"clean_session": True} if version == paho.MQTTv311 else {}
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=version, **kwargs
    )
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    return client


def _result(messages: int, elapsed: float, cpu: float) -> dict[str, float]:
    return {
        "messages": messages,
        "seconds": elapsed,
        "cpu": cpu,
        "rss_kib": peak_rss_kib(),
    }


def publish_loop(
    port: int, messages: int, payload: bytes, inflight: int, protocol: str
) -> dict[str, float]:
    """Publish ``messages`` copies of ``payload`` and wait for every PUBACK."""
    client = _client(protocol)
    acked = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    while not client.is_connected():
        client.loop(timeout=0.1)
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    refill = max(1, inflight // 2)
    sent = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    while acked < messages:
        room = min(inflight - (sent - acked), messages - sent)
        if room > 0 and (room >= refill or sent == acked):
            for _ in range(room):
                client.publish(TOPIC, payload, qos=1)
            sent += room
        client.loop(timeout=1.0)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    client.disconnect()
    return _result(messages, elapsed, cpu)


async def publish_asyncio(
    port: int, messages: int, payload: bytes, inflight: int, protocol: str
) -> dict[str, float]:
    """``publish_loop``, with paho driven by the event loop as the gateway drives it."""
    client = _client(protocol)
    bridge = AsyncioPaho(client, asyncio.get_running_loop())
    connected = asyncio.Event()
    room = asyncio.Event()
    refill = max(1, inflight // 2)
    acked = sent = 0

    def on_connect(*_: Any) -> None:
        connected.set()

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1
        if inflight - (sent - acked) >= refill or acked >= messages:
            room.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect_async("127.0.0.1", port)
    await bridge.connect()
    await connected.wait()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    while acked < messages:
        n = min(inflight - (sent - acked), messages - sent)
        for _ in range(n):
            client.publish(TOPIC, payload, qos=1)
        sent += n
        room.clear()
        await room.wait()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    bridge.close()
    return _result(messages, elapsed, cpu)


def run_bare(
    mode: str, port: int, *, messages: int, payload_bytes: int, inflight: int, protocol: str
) -> dict[str, float]:
    """``publish_loop`` (mode ``loop``) or ``publish_asyncio`` (``asyncio``) in a fresh
    child process (its CPU and RSS are its own)."""
    return run_child("bench._paho_bare", mode, port, messages, payload_bytes, inflight, protocol)


def main(argv: list[str]) -> None:
    if len(argv) != 6 or argv[0] not in ("loop", "asyncio"):
        # Not a stand-alone bench: ``./dev bench full_path`` runs it next to the gateway.
        print(
            "usage: python -m bench._paho_bare loop|asyncio PORT MESSAGES PAYLOAD_BYTES "
            "INFLIGHT PROTOCOL\n(its figures are printed by ./dev bench full_path)",
            file=sys.stderr,
        )
        sys.exit(2)
    mode, port, messages, payload_bytes, inflight, protocol = argv
    payload = b"x" * int(payload_bytes)
    args = (int(port), int(messages), payload, int(inflight), protocol)
    result = publish_loop(*args) if mode == "loop" else asyncio.run(publish_asyncio(*args))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
