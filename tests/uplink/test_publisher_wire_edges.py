"""The publisher on its own MQTT client, at the edges a review of the switch from paho
found: a stalled link under QoS 0, a refusing DISCONNECT whose close comes late, the
broker's Receive Maximum with the status message, a Maximum Packet Size of 0, and
stop() while a connection attempt is on its way. Real Mosquitto where it behaves so,
a scripted broker where it never would."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.mqtt.support import FakeBroker, FreezableProxy, read_packet, run, until
from tidegate.config.schema import MqttSection
from tidegate.demo.local_broker import LocalBroker
from tidegate.event import new_event
from tidegate.outbox import AsyncOutbox
from tidegate.outgoing import Outgoing
from tidegate.uplink.publisher import Publisher

CONNACK_V5 = b"\x20\x03\x00\x00\x00"
PUBLISH, DISCONNECT = 3, 14


def rows(n: int, topic: str = "t/s/x", qos: int = 1) -> list[Outgoing]:
    return [Outgoing(new_event("s", "x", float(i)), topic, qos, False) for i in range(n)]


def packet_id(flags: int, body: bytes) -> int | None:
    """A PUBLISH's packet id (None at QoS 0)."""
    if not (flags >> 1) & 3:
        return None
    at = 2 + int.from_bytes(body[:2], "big")
    return int.from_bytes(body[at : at + 2], "big")


def topic_of(body: bytes) -> bytes:
    return body[2 : 2 + int.from_bytes(body[:2], "big")]


async def publisher(tmp: Path, port: int, **mqtt: object) -> tuple[Publisher, AsyncOutbox]:
    outbox = AsyncOutbox.create(tmp / "o.db", "gw")
    await outbox.open()
    section = MqttSection.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "reconnect": {"initial_delay": 0.05, "max_delay": 0.1, "jitter": False},
            **mqtt,
        }
    )
    pub = Publisher(
        section,
        outbox,
        client_id="edge",
        status_topic="edge/status",
        password=None,
        ack_interval=0.05,
    )
    return pub, outbox


async def finish(pub: Publisher, task: asyncio.Task[None], outbox: AsyncOutbox) -> None:
    await pub.stop(0.3)
    await asyncio.wait_for(task, 5)
    await outbox.close()


def test_qos0_events_are_not_deleted_into_a_link_that_stopped_taking_bytes(
    tmp_path: Path, broker: LocalBroker
) -> None:
    async def main() -> None:
        async with FreezableProxy(broker.host, broker.port) as proxy:
            pub, outbox = await publisher(tmp_path, proxy.port)
            task = asyncio.create_task(pub.run())
            await until(lambda: pub.status.connected, 5, "connected")
            proxy.freeze()
            await outbox.call(outbox.outbox.put, rows(100_000, qos=0))
            pub.wake()
            # The window fills with messages the socket has not taken, and stays full.
            await until(lambda: pub.status.inflight >= 200, 10, "a full, stalled window")
            await finish(pub, task, outbox)
            # Socket buffers on loopback take a few MB (before: all 20 MB of them "sent" in
            # half a second); whatever was not taken by the kernel stays in the outbox.
            delivered = pub.status.events_delivered
            assert delivered < 50_000, delivered
            assert outbox.stats.depth == 100_000 - delivered

    run(main(), timeout=40)


def test_a_refusing_disconnect_counts_though_the_close_comes_late(tmp_path: Path) -> None:
    connections = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_packet(reader)
        writer.write(CONNACK_V5)
        while True:
            kind, flags, body = await read_packet(reader)
            pid = packet_id(flags, body)
            if kind != PUBLISH or pid is None:
                continue
            if topic_of(body) == b"t/poison":
                writer.write(b"\xe0\x02\x95\x00")  # DISCONNECT: packet too large
                await asyncio.sleep(0.02)  # the close a little later (a slow stack)
                writer.close()
                return
            writer.write(b"\x40\x02" + pid.to_bytes(2, "big"))

    async def main() -> None:
        async with FakeBroker(script) as fake:
            pub, outbox = await publisher(tmp_path, fake.port)
            await outbox.call(outbox.outbox.put, rows(1, "t/poison"))
            task = asyncio.create_task(pub.run())

            async def trickle() -> None:  # a live gateway commits all the time
                while True:
                    await asyncio.sleep(0.01)
                    await outbox.call(outbox.outbox.put, rows(1))
                    pub.wake()

            feeder = asyncio.create_task(trickle())
            await until(lambda: pub.status.events_rejected == 1, 10, "the poison dead-lettered")
            # Three refusals in a row make it poison; none was missed on the way.
            assert connections == 3, connections
            feeder.cancel()
            await finish(pub, task, outbox)

    run(main())


def test_the_status_message_fits_in_the_brokers_receive_maximum(tmp_path: Path) -> None:
    peak = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal peak
        await read_packet(reader)
        writer.write(b"\x20\x06\x00\x00\x03\x21\x00\x05")  # Receive Maximum 5
        unanswered: set[int] = set()

        def answer(pid: int) -> None:
            unanswered.discard(pid)
            writer.write(b"\x40\x02" + pid.to_bytes(2, "big"))

        while True:
            kind, flags, body = await read_packet(reader)
            pid = packet_id(flags, body)
            if kind == PUBLISH and pid is not None:
                unanswered.add(pid)
                peak = max(peak, len(unanswered))
                asyncio.get_running_loop().call_later(0.05, answer, pid)

    async def main() -> None:
        async with FakeBroker(script) as fake:
            pub, outbox = await publisher(tmp_path, fake.port)
            await outbox.call(outbox.outbox.put, rows(40))
            task = asyncio.create_task(pub.run())
            await until(lambda: pub.status.events_delivered == 40, 10, "all delivered")
            assert peak == 5, peak  # used to the full, never beyond
            await finish(pub, task, outbox)

    run(main())


def test_a_maximum_packet_size_of_zero_is_a_broken_broker_not_poison(tmp_path: Path) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        writer.write(b"\x20\x08\x00\x00\x05\x27\x00\x00\x00\x00")  # Maximum Packet Size 0
        await read_packet(reader)

    async def main() -> None:
        async with FakeBroker(script) as fake:
            pub, outbox = await publisher(tmp_path, fake.port)
            await outbox.call(outbox.outbox.put, rows(10))
            task = asyncio.create_task(pub.run())
            await until(
                lambda: "Maximum Packet Size of 0" in (pub.status.last_error or ""),
                5,
                "the connection refused as a protocol error",
            )
            assert pub.status.events_rejected == 0
            assert not pub.status.connected
            await finish(pub, task, outbox)
            assert outbox.stats.depth == 10

    run(main())


def test_stop_while_connecting_signs_off_once_connected(tmp_path: Path) -> None:
    stopped = asyncio.Event()
    seen: list[tuple[int, bytes]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_packet(reader)
        await stopped.wait()  # the CONNACK only once stop() was called
        writer.write(CONNACK_V5)
        while True:
            kind, flags, body = await read_packet(reader)
            seen.append((kind, topic_of(body) if kind == PUBLISH else b""))
            pid = packet_id(flags, body)
            if kind == PUBLISH and pid is not None:
                writer.write(b"\x40\x02" + pid.to_bytes(2, "big"))

    async def main() -> None:
        async with FakeBroker(script) as fake:
            pub, outbox = await publisher(tmp_path, fake.port)
            task = asyncio.create_task(pub.run())
            await until(lambda: pub._client is not None, 5, "a connection attempt")
            await pub.stop(1.0)
            stopped.set()
            await asyncio.wait_for(task, 5)  # run() ends by itself
            await until(lambda: (DISCONNECT, b"") in seen, 5, "a clean DISCONNECT")
            assert (PUBLISH, b"edge/status") in seen  # "offline", not the Last Will
            await outbox.close()

    run(main())
