"""tidegate's own MQTT code (``tidegate.mqtt.wire``), as the gateway uses it.

Publishing: ``WireClient`` as the uplink's publisher drives it, in bench/_wire_bare.py's
loop, the baseline ``./dev bench full_path`` sets the gateway's CPU per event against: a
window of WINDOW messages topped up once REFILL of them are acknowledged
(``on_publish``), each top-up going out in one write. Receiving: ``WireSubscriber`` as
the ``mqtt`` driver's link drives it (a persistent session, PUBACKs sent by the caller,
gathered per turn of the event loop as the driver acknowledges a batch).
"""

from __future__ import annotations

import asyncio

from bench._client_common import FENCE_TOPIC, PAYLOAD, WINDOW, Meter, peak_rss_kib
from bench._wire_bare import publish_wire
from tidegate.mqtt.wire.subscriber import Message, WireSubscriber

LIMIT = 600.0
"""Seconds a row may take before it is declared stalled."""


def wire_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    # publish_wire measures itself (from the first PUBLISH, connecting left out).
    result = asyncio.run(publish_wire(port, messages, PAYLOAD, WINDOW, "3.1.1"))
    return {**result, "rss_kib": peak_rss_kib()}


def wire_receive(port: int, messages: int, session: str, meter: Meter) -> dict[str, float]:
    return asyncio.run(_receive(port, messages, session, meter))


async def _receive(port: int, messages: int, session: str, meter: Meter) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    unacked: list[int] = []
    got = 0

    def ack() -> None:
        subscriber.ack(unacked[:])
        unacked.clear()

    def on_message(message: Message) -> None:
        nonlocal got
        got += 1
        if message.qos:
            if not unacked:
                loop.call_soon(ack)
            unacked.append(message.mid)
        if got >= messages:
            done.set()

    subscriber = WireSubscriber(
        client_id=session, v5=False, keepalive=60, username=None, password=None,
        clean=False, session_expiry=0, on_message=on_message,
        on_disconnect=lambda _r, _b, detail: done.set(), room=lambda: True,
    )
    meter.start()
    await subscriber.connect("127.0.0.1", port, None, give_up_after=10)
    await asyncio.wait_for(done.wait(), LIMIT)
    if got < messages:
        raise RuntimeError(f"the connection ended after {got} of {messages} messages")
    result = meter.stop(messages)
    # A SUBSCRIBE as the fence: once answered, the broker has read every PUBACK before it.
    ack()
    await subscriber.subscribe([(FENCE_TOPIC, 0)])
    subscriber.close(goodbye=True)
    return result
