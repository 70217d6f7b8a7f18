"""Asyncio MQTT clients from PyPI, each used the way its documentation shows.

Clients whose ``publish`` is a coroutine that returns at PUBACK (aiomqtt, zmqtt,
amqtt) keep WINDOW publishes awaiting at all times: WINDOW tasks, each awaiting one
publish after another (one task per message would add a task's cost to each).
gmqtt's ``publish`` is a plain call with no acknowledgement callback; its public
``persistent_storage`` hook (where it keeps unacknowledged QoS 1 packets and drops
each one on its PUBACK) counts the acknowledgements.

Each library is imported inside its functions: one that does not install fails only
its own row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bench._client_common import (
    FENCE_TOPIC,
    PAYLOAD,
    REFILL,
    TOPIC,
    WINDOW,
    Meter,
    Stalled,
    recv_topic,
)

HOST = "127.0.0.1"
LIMIT = 600.0


async def _workers(messages: int, publish: Callable[[], Awaitable[object]]) -> None:
    """WINDOW tasks sharing ``messages`` awaited publishes."""
    left = messages

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await publish()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(WINDOW))), LIMIT)


# --- gmqtt ----------------------------------------------------------------------------


async def _gmqtt_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    # Optional libraries, not tidegate's dependencies: imported where used, so one
    # that is missing fails only its own row (and mypy passes without them).
    import gmqtt  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: PLC0415
    from gmqtt.mqtt.constants import MQTTv311  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: PLC0415
    from gmqtt.storage import PersistentStorage  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: PLC0415

    room = asyncio.Event()
    acked = sent = 0

    class Counting(PersistentStorage):  # type: ignore[misc, unused-ignore]
        def remove_message_by_mid(self, mid: int) -> None:
            nonlocal acked
            super().remove_message_by_mid(mid)
            acked += 1
            if WINDOW - (sent - acked) >= REFILL or acked >= messages:
                room.set()

    client = gmqtt.Client("bench-gmqtt", persistent_storage=Counting())
    await client.connect(HOST, port, version=MQTTv311)
    meter.start()
    while acked < messages:
        n = min(WINDOW - (sent - acked), messages - sent)
        for _ in range(n):
            client.publish(TOPIC, PAYLOAD, qos=1)
        sent += n
        room.clear()
        await asyncio.wait_for(room.wait(), LIMIT)
    result = meter.stop(messages)
    await client.disconnect()
    return result


async def _gmqtt_receive(port: int, messages: int, session: str, meter: Meter,
                         ) -> dict[str, float]:
    import gmqtt  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: PLC0415
    from gmqtt.mqtt.constants import MQTTv311  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: PLC0415

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    got = 0

    def on_message(*_: Any) -> int:
        nonlocal got
        got += 1
        if got >= messages and not done.done():
            done.set_result(None)
        return 0

    client = gmqtt.Client(session, clean_session=False)
    client.on_message = on_message
    subacked = asyncio.Event()
    client.on_subscribe = lambda *_: subacked.set()
    meter.start()
    await client.connect(HOST, port, version=MQTTv311)
    await asyncio.wait_for(done, LIMIT)
    result = meter.stop(messages)
    # The fence (FENCE_TOPIC's docstring): gmqtt tells nothing of a PUBACK, but a SUBACK.
    client.subscribe(recv_topic(session), qos=1)
    await asyncio.wait_for(subacked.wait(), 10)
    await client.disconnect()
    return result


# --- aiomqtt --------------------------------------------------------------------------


async def _aiomqtt_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    import aiomqtt  # noqa: PLC0415

    async with aiomqtt.Client(HOST, port, identifier="bench-aiomqtt",
                              protocol=aiomqtt.ProtocolVersion.V311,
                              # paho's own cap off, as the gateway has it: the
                              # WINDOW awaiting tasks are the cap (with a cap, paho
                              # scans every unacknowledged message on each PUBACK)
                              max_inflight_messages=0) as client:
        meter.start()
        await _workers(messages, lambda: client.publish(TOPIC, PAYLOAD, qos=1))
        return meter.stop(messages)


async def _aiomqtt_receive(port: int, messages: int, session: str, meter: Meter,
                           ) -> dict[str, float]:
    import aiomqtt  # noqa: PLC0415

    meter.start()
    async with aiomqtt.Client(HOST, port, identifier=session, clean_session=False,
                              protocol=aiomqtt.ProtocolVersion.V311) as client:
        got = 0

        async def drain() -> None:
            nonlocal got
            async for _ in client.messages:
                got += 1
                if got >= messages:
                    return

        await asyncio.wait_for(drain(), LIMIT)
        result = meter.stop(messages)
        await client.publish(FENCE_TOPIC, b"", qos=1, timeout=10)
        return result


# --- zmqtt ----------------------------------------------------------------------------


async def _zmqtt_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    import zmqtt  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: PLC0415

    qos = zmqtt.QoS.AT_LEAST_ONCE
    # Its replay buffer (unacknowledged QoS 1 kept for a reconnect) must hold the window.
    async with zmqtt.create_client(HOST, port, client_id="bench-zmqtt",
                                   session_replay_buffer_size=2 * WINDOW) as client:
        meter.start()
        await _workers(messages, lambda: client.publish(TOPIC, PAYLOAD, qos=qos))
        return meter.stop(messages)


async def _zmqtt_receive(port: int, messages: int, session: str, meter: Meter,
                         ) -> dict[str, float]:
    import zmqtt  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: PLC0415

    qos = zmqtt.QoS.AT_LEAST_ONCE
    meter.start()
    async with (
        zmqtt.create_client(HOST, port, client_id=session, clean_session=False) as client,
        # A resumed session's messages wait in zmqtt until a local subscription matches.
        client.subscribe(recv_topic(session), qos=qos) as sub,
    ):
        got = 0

        async def drain() -> None:
            nonlocal got
            async for _ in sub:
                got += 1
                if got >= messages:
                    return

        await asyncio.wait_for(drain(), LIMIT)
        result = meter.stop(messages)
        await asyncio.wait_for(client.publish(FENCE_TOPIC, b"", qos=qos), 10)
        return result


# --- amqtt ----------------------------------------------------------------------------


def _amqtt_config() -> dict[str, Any]:
    # No plugins, no reconnects: only the client's own per-message path is measured.
    return {"plugins": {}, "auto_reconnect": False, "keep_alive": 60}


async def _amqtt_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    from amqtt.client import MQTTClient  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: PLC0415

    client = MQTTClient("bench-amqtt", config=_amqtt_config())
    await client.connect(f"mqtt://{HOST}:{port}/")
    meter.start()
    await _workers(messages, lambda: client.publish(TOPIC, PAYLOAD, qos=1))
    result = meter.stop(messages)
    await client.disconnect()
    return result


async def _amqtt_receive(port: int, messages: int, session: str, meter: Meter,
                         ) -> dict[str, float]:
    from amqtt.client import MQTTClient  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: PLC0415

    client = MQTTClient(session, config=_amqtt_config())
    meter.start()
    await client.connect(f"mqtt://{HOST}:{port}/", cleansession=False)
    for _ in range(messages):
        if await client.deliver_message(LIMIT) is None:
            raise Stalled("amqtt delivered nothing")
    result = meter.stop(messages)
    await asyncio.wait_for(client.publish(FENCE_TOPIC, b"", qos=1), 10)
    await client.disconnect()
    return result


def _sync_publish(fn: Callable[[int, int, Meter], Awaitable[dict[str, float]]],
                  ) -> Callable[[int, int, Meter], dict[str, float]]:
    def run(port: int, messages: int, meter: Meter) -> dict[str, float]:
        return asyncio.run(fn(port, messages, meter))  # type: ignore[arg-type]

    return run


def _sync_receive(fn: Callable[[int, int, str, Meter], Awaitable[dict[str, float]]],
                  ) -> Callable[[int, int, str, Meter], dict[str, float]]:
    def run(port: int, messages: int, session: str, meter: Meter) -> dict[str, float]:
        return asyncio.run(fn(port, messages, session, meter))  # type: ignore[arg-type]

    return run


gmqtt_publish = _sync_publish(_gmqtt_publish)
gmqtt_receive = _sync_receive(_gmqtt_receive)
aiomqtt_publish = _sync_publish(_aiomqtt_publish)
aiomqtt_receive = _sync_receive(_aiomqtt_receive)
zmqtt_publish = _sync_publish(_zmqtt_publish)
zmqtt_receive = _sync_receive(_zmqtt_receive)
amqtt_publish = _sync_publish(_amqtt_publish)
amqtt_receive = _sync_receive(_amqtt_receive)
