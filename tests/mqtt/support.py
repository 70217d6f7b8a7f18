"""Real parts for the wire client's tests: recorded callbacks, running a test's
coroutine, TCP proxies that freeze or throttle the link, a scripted fake broker for
what Mosquitto will not do, test certificates."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from tests.support import Received
from tidegate.mqtt.credentials import Secret
from tidegate.mqtt.wire import Reason, WireClient
from tidegate.mqtt.wire.reasons import SUCCESS

PROTOCOLS = ["3.1.1", "5"]
DISCONNECTED = (SUCCESS, False, "disconnected")


def run(main: Coroutine[Any, Any, None], timeout: float = 20) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await main

    asyncio.run(bounded())


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    """``tests.support.wait_until`` for code on the event loop: the loop keeps running."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Calls:
    """What a WireClient reported through its two callbacks."""

    published: list[tuple[int, Reason]] = field(default_factory=list)
    disconnects: list[tuple[Reason, bool, str]] = field(default_factory=list)

    def on_publish(self, mid: int, reason: Reason) -> None:
        self.published.append((mid, reason))

    def on_disconnect(self, reason: Reason, from_broker: bool, detail: str) -> None:
        self.disconnects.append((reason, from_broker, detail))

    def mids(self) -> list[int]:
        return [mid for mid, _ in self.published]


def new_client(
    protocol: str,
    calls: Calls,
    *,
    keepalive: float = 30,
    client_id: str = "wire-test",
    username: str | None = None,
    password: str | None = None,
    will_topic: str = "wire/will",
    will_payload: bytes = b"offline",
    topic_aliases: bool = False,
) -> WireClient:
    return WireClient(
        client_id=client_id,
        v5=protocol == "5",
        keepalive=keepalive,
        username=username,
        password=Secret(password) if password is not None else None,
        will_topic=will_topic,
        will_payload=will_payload,
        on_publish=calls.on_publish,
        on_disconnect=calls.on_disconnect,
        topic_aliases=topic_aliases,
    )


async def connected(client: WireClient, port: int, host: str = "127.0.0.1") -> None:
    ack = await client.connect(host, port, None, give_up_after=5)
    assert ack.reason == SUCCESS and not ack.session_present


def unheard(protocol: str) -> Reason:
    """A PUBACK's reason for a message nobody subscribed to: MQTT 5 says so (not a failure)."""
    return Reason(0x10) if protocol == "5" else SUCCESS


def by_topic(messages: list[Received]) -> dict[str, tuple[bytes, bool, int]]:
    return {m.topic: (m.payload, m.retain, m.qos) for m in messages}


class LoopErrors(list[dict[str, object]]):
    """Everything that reached the event loop's exception handler (an exception that
    escaped a protocol callback lands there, not in the test)."""

    def install(self) -> LoopErrors:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: self.append(ctx))
        return self


# -- talking MQTT by hand -------------------------------------------------------------------


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """One MQTT packet: its type, its flags and its body."""
    first = (await reader.readexactly(1))[0]
    length = shift = 0
    while True:
        digit = (await reader.readexactly(1))[0]
        length |= (digit & 0x7F) << shift
        shift += 7
        if digit < 0x80:
            break
    return first >> 4, first & 0x0F, await reader.readexactly(length)


def connack_of(protocol: str, session_present: bool = False) -> bytes:
    body = bytes([int(session_present), 0]) + (b"\x00" if protocol == "5" else b"")
    return b"\x20" + bytes([len(body)]) + body


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _LoopServer:
    """A loopback server on the test's own loop; at the end it stops and cancels the
    tasks it started (``_tasks``)."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._server = await self._listen()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class FakeBroker(_LoopServer):
    """A loopback server on the test's own loop, answering each connection with ``script``."""

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            # Cancelled at the end of the test: a normal end for a fake broker (a task
            # of start_server's that ends cancelled is an error for the loop's handler).
            with contextlib.suppress(
                asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError
            ):
                await self.script(reader, writer)
        finally:
            writer.close()
            self._tasks.discard(task)


# -- links that die silently or crawl --------------------------------------------------------


class _Proxy(_LoopServer):
    """A TCP proxy on the test's loop in front of a real broker; ``_pipe`` carries each
    direction of each connection."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.upstream = (host, port)
        self._writers: list[asyncio.StreamWriter] = []

    async def __aexit__(self, *exc: object) -> None:
        await super().__aexit__(*exc)
        for writer in self._writers:
            writer.close()

    async def _serve(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        broker_in, broker = await asyncio.open_connection(*self.upstream)
        self._writers += [client, broker]
        for source, sink, upstream in ((client_in, broker, True), (broker_in, client, False)):
            task = asyncio.ensure_future(self._pipe(source, sink, upstream))
            self._tasks.add(task)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, upstream: bool
    ) -> None:
        raise NotImplementedError


class FreezableProxy(_Proxy):
    """``freeze()`` stops it forwarding either way while every socket stays open: a
    pulled cable or a dead NAT entry, which sends no FIN and no RST."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()

    def freeze(self) -> None:
        self._flowing.clear()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, upstream: bool
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                # Frozen, what was read is held and nothing more is read: the sender's
                # bytes sit in socket buffers, as they would behind a dead link.
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        # Nor does a frozen link pass on an end (the broker drops the silent client
        # after 1.5 keep-alives, sooner than the client may notice it).
        await self._flowing.wait()
        sink.close()


class ThrottlingProxy(_Proxy):
    """Passes the client's bytes on at ``rate`` bytes a second (the broker's at once): a
    slow but live uplink, a GPRS modem's say."""

    CHUNK = 1024

    def __init__(self, host: str, port: int, rate: float) -> None:
        super().__init__(host, port)
        self.rate = rate

    async def _listen(self) -> asyncio.Server:
        # Over loopback the proxy's socket would take in a whole large message at once.
        # A small receive buffer (set before accept: accepted sockets inherit it), read a
        # little at a time (``limit``: the stream reader stops reading the socket past
        # twice that), keeps the window small, so what the client sent waits in the
        # client's own kernel queue and drains from it at the link's pace.
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listener.bind(("127.0.0.1", 0))
        return await asyncio.start_server(self._serve, sock=listener, limit=self.CHUNK)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, upstream: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        with contextlib.suppress(ConnectionError):
            while data := await source.read(self.CHUNK if upstream else 65536):
                sink.write(data)
                await sink.drain()
                if upstream:
                    due = max(due, loop.time()) + len(data) / self.rate
                    await asyncio.sleep(due - loop.time())  # the link's pace, not a wait
        sink.close()


# -- certificates ---------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _self_signed_ca(key: Path, crt: Path, name: str) -> None:
    _openssl(
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(crt)),
    )


def make_pki(d: Path) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate it
    signed, and an unrelated CA (EC keys: quicker to make than RSA)."""
    d.mkdir(parents=True, exist_ok=True)
    names = ["ca", "other-ca", "server", "client"]
    files = {f"{n}.{ext}": d / f"{n}.{ext}" for n in names for ext in ("key", "crt", "csr")}
    _self_signed_ca(files["ca.key"], files["ca.crt"], "wire-test-ca")
    _self_signed_ca(files["other-ca.key"], files["other-ca.crt"], "someone-else")
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who, cn in (("server", "127.0.0.1"), ("client", "gateway")):
        _openssl(
            *("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-subj", f"/CN={cn}", "-keyout", str(files[f"{who}.key"])),
            *("-out", str(files[f"{who}.csr"])),
        )
        _openssl(
            *("x509", "-req", "-in", str(files[f"{who}.csr"]), "-CA", str(files["ca.crt"])),
            *("-CAkey", str(files["ca.key"]), "-CAcreateserial", "-days", "2"),
            *("-extfile", str(ext), "-out", str(files[f"{who}.crt"])),
        )
    return files
