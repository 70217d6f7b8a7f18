"""A bad link for tests: a TCP proxy in front of a real broker that cuts connections.

It can also play the broker refusing: a DISCONNECT with a reason code before
the cut, or a PUBACK with a reason code in place of the broker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence

MQTT_CONNACK = 2
MQTT_PUBLISH = 3
MQTT_PUBACK = 4


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One MQTT packet: its type, and all its bytes as they came."""
    head = await reader.readexactly(1)
    length, multiplier, raw = 0, 1, bytearray(head)
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        raw.append(byte)
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        if byte < 0x80:
            break
    raw += await reader.readexactly(length)
    return head[0] >> 4, bytes(raw)


def _publish_topic_and_id(packet: bytes) -> tuple[str, int]:
    """A PUBLISH's topic and packet identifier (0 for QoS 0, which has none)."""
    index = 1
    while packet[index] & 0x80:  # skip the remaining length
        index += 1
    size = int.from_bytes(packet[index + 1 : index + 3], "big")
    end = index + 3 + size
    topic = packet[index + 3 : end].decode("utf-8", "replace")
    qos = (packet[0] >> 1) & 0x03
    return topic, int.from_bytes(packet[end : end + 2], "big") if qos else 0


class FlakyLink:
    """A TCP proxy on loopback, in front of a real broker, that cuts connections on purpose.

    The first ``drops`` connections are cut: with ``cut="connack"`` right after
    the broker's CONNACK has reached the client, with ``cut="publish"`` when the
    client sends a PUBLISH whose topic ``watch`` accepts (that PUBLISH is not
    passed on). ``refuse_with`` set, the client is first sent an MQTT 5
    DISCONNECT with that reason code, as a broker refusing the message would;
    a list gives one code per doomed connection (``None``: a plain cut), and
    its length is then the number of doomed connections.

    ``puback_with`` set (with ``cut="publish"``), a doomed connection is not cut:
    its first watched PUBLISH is answered with an MQTT 5 PUBACK carrying that
    reason code instead of being passed on, and the connection goes on.

    Later connections pass untouched. The proxy runs its own event loop on a
    thread, so it serves a gateway on any loop, in this process or another.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        drops: int = 0,
        cut: str = "publish",
        watch: Callable[[str], bool] = lambda topic: True,
        refuse_with: int | Sequence[int | None] | None = None,
        puback_with: int | None = None,
    ) -> None:
        assert cut in ("connack", "publish")
        assert puback_with is None or (cut == "publish" and refuse_with is None)
        self.upstream = (host, port)
        if isinstance(refuse_with, Sequence):
            self.plan = list(refuse_with)
            drops = len(self.plan)
        else:
            self.plan = [refuse_with] * drops
        self.drops = drops
        self.cut = cut
        self.watch = watch
        self.puback_with = puback_with
        self.connections = 0
        self.dropped = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> FlakyLink:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        )
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        # The reason code of this connection's refusal: doomed connections only.
        doomed = self.connections <= self.drops
        refusal = self.plan[self.connections - 1] if doomed else None
        try:
            broker_in, broker = await asyncio.open_connection(*self.upstream)
        except OSError:
            client.close()
            self._tasks.discard(task)
            return
        refused = asyncio.Event()
        directions = [
            asyncio.ensure_future(
                self._up(client_in, broker, client, doomed, refusal=refusal, refused=refused)
            ),
            asyncio.ensure_future(self._down(broker_in, client, doomed, refused)),
        ]
        try:
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for direction in directions:
                direction.cancel()
            await asyncio.gather(*directions, return_exceptions=True)
            client.close()
            broker.close()
            self._tasks.discard(task)

    async def _up(
        self,
        source: asyncio.StreamReader,
        broker: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        doomed: bool,
        *,
        refusal: int | None,
        refused: asyncio.Event,
    ) -> None:
        """Client to broker, packet by packet, until EOF or the cut."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, packet = await _read_packet(source)
                topic, packet_id = (
                    _publish_topic_and_id(packet) if kind == MQTT_PUBLISH else ("", 0)
                )
                watched = kind == MQTT_PUBLISH and self.watch(topic)
                if doomed and self.cut == "publish" and watched and self.puback_with is not None:
                    # The broker's answer, played by us: the message never reaches it.
                    doomed = False
                    self.dropped += 1
                    reply = bytes([MQTT_PUBACK << 4, 3]) + packet_id.to_bytes(2, "big")
                    client.write(reply + bytes([self.puback_with]))
                    await client.drain()
                    continue
                if doomed and self.cut == "publish" and watched:
                    self.dropped += 1
                    if refusal is not None:
                        refused.set()  # the broker's later packets must not follow it
                        client.write(bytes([0xE0, 1, refusal]))  # DISCONNECT
                        client.write_eof()
                        # Closing with the client's bytes unread would reset the
                        # connection, and a reset may discard the DISCONNECT before
                        # the client reads it: wait for the client to hang up.
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(5):
                                while await source.read(65536):
                                    pass
                    return
                broker.write(packet)
                await broker.drain()

    async def _down(
        self,
        source: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        doomed: bool,
        refused: asyncio.Event,
    ) -> None:
        """Broker to client, packet by packet, until EOF or the cut."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, packet = await _read_packet(source)
                if refused.is_set():
                    # After our DISCONNECT the client's side is shut for writing (a
                    # write would fail, end the connection early and reset it, which
                    # can discard the DISCONNECT before the client reads it).
                    continue
                client.write(packet)
                await client.drain()
                if doomed and self.cut == "connack" and kind == MQTT_CONNACK:
                    self.dropped += 1
                    return
