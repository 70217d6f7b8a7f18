"""The MQTT client library alone: a bare ``tidegate.mqtt.wire`` publish loop, QoS 1,
counted at PUBACK.

The reference figure of issue 12's goal "the gateway's CPU per event at most 25 %
above what the client library alone spends per message", now that the gateway's
uplink publishes with ``tidegate.mqtt.wire.WireClient`` (bench/_paho_bare.py is the
same loop on paho-mqtt, kept for comparison). Set up as the publisher sets up its
client (``tidegate.uplink.client.new_client``: clean session, a retained Last Will,
the configured keep-alive) and kept as full as the gateway's send window (refilled
once half of ``inflight`` is acknowledged, everything published in one turn of the
event loop going out in one write, as the publisher's refills do), but with no
outbox, no rules, no driver: the difference between this and the gateway at one
event per message is everything but the client. CPU is ``time.process_time`` of the
publish loop only (connecting is left out), in a child process of its own.

Run alone: ``python -m bench._wire_bare PORT MESSAGES PAYLOAD_BYTES INFLIGHT PROTOCOL``
prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench._child import run_child
from bench._client_common import peak_rss_kib
from tidegate.mqtt.wire import Reason, WireClient

TOPIC = "tidegate/bench/fast/power"
"""The topic the full-path bench's gateway publishes one of its signals to."""
WILL_TOPIC = "tidegate/bench/wire/status"
LIMIT = 600.0
"""Seconds the loop may take before it is declared stalled."""


def _result(messages: int, elapsed: float, cpu: float) -> dict[str, float]:
    return {
        "messages": messages,
        "seconds": elapsed,
        "cpu": cpu,
        # Not ru_maxrss: that holds the spawning parent's high-water mark (peak_rss_kib).
        "rss_kib": peak_rss_kib(),
    }


async def publish_wire(
    port: int, messages: int, payload: bytes, inflight: int, protocol: str
) -> dict[str, float]:
    """Publish ``messages`` copies of ``payload`` and wait for every PUBACK."""
    room = asyncio.Event()
    closed = asyncio.Event()
    acked = sent = 0
    failure: str | None = None

    def on_publish(mid: int, reason: Reason) -> None:
        nonlocal acked, failure
        if reason.is_failure and failure is None:
            failure = f"message {mid} refused: {reason}"
        acked += 1
        if inflight - (sent - acked) >= refill or acked >= messages or failure:
            room.set()

    def on_disconnect(reason: Reason, from_broker: bool, detail: str) -> None:
        nonlocal failure
        if acked < messages and failure is None:
            failure = f"connection lost ({detail})"
        closed.set()
        room.set()

    client = WireClient(
        client_id="bench-wire",
        v5=protocol == "5",
        keepalive=60,
        username=None,
        password=None,
        will_topic=WILL_TOPIC,
        will_payload=b"offline",
        on_publish=on_publish,
        on_disconnect=on_disconnect,
    )
    ack = await client.connect("127.0.0.1", port, None, give_up_after=10)
    if ack.reason.is_failure:
        raise RuntimeError(f"broker refused the connection: {ack.reason}")
    # MQTT 5: never more in flight than the broker takes, as the publisher's window.
    inflight = min(inflight, client.receive_maximum)
    refill = max(1, inflight // 2)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    async with asyncio.timeout(LIMIT):
        while acked < messages and failure is None:
            n = min(inflight - (sent - acked), messages - sent)
            for _ in range(n):
                if client.publish(TOPIC, payload, 1, False) < 0:
                    raise RuntimeError("the connection is closed")
            sent += n
            room.clear()
            await room.wait()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    if failure is not None:
        raise RuntimeError(failure)
    client.disconnect()
    # Closed once the DISCONNECT is written: leaving earlier could cut it off.
    await asyncio.wait_for(closed.wait(), 10)
    return _result(messages, elapsed, cpu)


def run_bare(
    port: int, *, messages: int, payload_bytes: int, inflight: int, protocol: str
) -> dict[str, float]:
    """``publish_wire`` in a fresh child process (its CPU and RSS are its own)."""
    return run_child("bench._wire_bare", port, messages, payload_bytes, inflight, protocol)


def main(argv: list[str]) -> None:
    if len(argv) != 5:
        # Not a stand-alone bench: ``./dev bench full_path`` runs it next to the gateway.
        print(
            "usage: python -m bench._wire_bare PORT MESSAGES PAYLOAD_BYTES INFLIGHT PROTOCOL\n"
            "(its figures are printed by ./dev bench full_path)",
            file=sys.stderr,
        )
        sys.exit(2)
    port, messages, payload_bytes, inflight, protocol = argv
    payload = b"x" * int(payload_bytes)
    result = asyncio.run(publish_wire(int(port), int(messages), payload, int(inflight), protocol))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
