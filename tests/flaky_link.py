"""A bad link for tests: a TCP proxy in front of a real broker that cuts connections."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

MQTT_CONNACK = 2
MQTT_PUBLISH = 3


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


def _publish_topic(packet: bytes) -> str:
    index = 1
    while packet[index] & 0x80:  # skip the remaining length
        index += 1
    size = int.from_bytes(packet[index + 1 : index + 3], "big")
    return packet[index + 3 : index + 3 + size].decode("utf-8", "replace")


class FlakyLink:
    """A TCP proxy on loopback, in front of a real broker, that cuts connections on purpose.

    The first ``drops`` connections are cut: with ``cut="connack"`` right after
    the broker's CONNACK has reached the client, with ``cut="publish"`` when the
    client sends a PUBLISH whose topic ``watch`` accepts (that PUBLISH is not
    passed on). ``refuse_with`` set, the client is first sent an MQTT 5
    DISCONNECT with that reason code, as a broker refusing the message would.
    Later connections pass untouched. The proxy runs its own event loop on a
    thread, so it serves a gateway on any loop, in this process or another.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        drops: int,
        cut: str = "publish",
        watch: Callable[[str], bool] = lambda topic: True,
        refuse_with: int | None = None,
    ) -> None:
        assert cut in ("connack", "publish")
        self.upstream = (host, port)
        self.drops = drops
        self.cut = cut
        self.watch = watch
        self.refuse_with = refuse_with
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
        doomed = self.connections <= self.drops
        try:
            broker_in, broker = await asyncio.open_connection(*self.upstream)
        except OSError:
            client.close()
            self._tasks.discard(task)
            return
        directions = [
            asyncio.ensure_future(self._up(client_in, broker, client, doomed)),
            asyncio.ensure_future(self._down(broker_in, client, doomed)),
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
    ) -> None:
        """Client to broker, packet by packet, until EOF or the cut."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, packet = await _read_packet(source)
                watched = kind == MQTT_PUBLISH and self.watch(_publish_topic(packet))
                if doomed and self.cut == "publish" and watched:
                    self.dropped += 1
                    if self.refuse_with is not None:
                        client.write(bytes([0xE0, 1, self.refuse_with]))  # DISCONNECT
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
        self, source: asyncio.StreamReader, client: asyncio.StreamWriter, doomed: bool
    ) -> None:
        """Broker to client, packet by packet, until EOF or the cut."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, packet = await _read_packet(source)
                client.write(packet)
                await client.drain()
                if doomed and self.cut == "connack" and kind == MQTT_CONNACK:
                    self.dropped += 1
                    return
