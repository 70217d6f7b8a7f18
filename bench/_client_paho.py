"""paho-mqtt, five ways: the bare ``loop()`` (bench/_paho_bare.py), its own thread
(``loop_start``), the gateway's asyncio bridge, and two "used differently" drivers.

``paho tuned`` uses public API only: its own ``select`` on the socket with
``loop_read``/``loop_write``/``loop_misc`` (paho documents them for "your own
application loop"). ``loop()`` and ``loop_start()`` make paho create a socket pair and
write one byte to it on every ``publish`` (to wake its ``select``), and ``loop()``
selects on two sockets and runs ``loop_misc`` on every call; without them a publish
is one ``send``. On receive, ``loop_read`` reads at most one packet per call when
nothing of ours is in flight, so the loop calls it again while it keeps yielding
messages rather than going back to ``select``.

``paho private`` also overrides two private methods, ``Client._sock_recv`` and
``Client._sock_send``: reads come from a 64 KiB buffer (paho reads every packet with
three ``recv`` calls: command byte, length byte, body) and writes are gathered and
sent once per loop turn (paho sends every packet, each PUBACK included, on its own).
Private API: it may break with any paho release.
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench._client_common import (
    FENCE_TOPIC,
    PAYLOAD,
    REFILL,
    TOPIC,
    WINDOW,
    Meter,
    Stalled,
    peak_rss_kib,
)
from bench._paho_bare import publish_asyncio, publish_loop
from tidegate.mqtt.paho_bridge import AsyncioPaho

HOST = "127.0.0.1"
LIMIT = 600.0
"""Seconds a row may take before it is declared stalled."""


def _client(client_id: str = "", *, session: bool = False, cls: type[paho.Client] = paho.Client,
            ) -> paho.Client:
    client = cls(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311,
                 clean_session=not session)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    return client


def _nodelay(client: paho.Client) -> None:
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _check(rc: int, deadline: float) -> None:
    if rc != paho.MQTT_ERR_SUCCESS:
        raise Stalled(f"paho: {paho.error_string(rc)}")
    if time.monotonic() > deadline:
        raise Stalled("no progress before the deadline")


# --- 1. bare loop() (the reference), 1b. loop_start() -----------------------------------


def bare_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    # Its own RSS figure is ru_maxrss, which holds the spawning parent's (peak_rss_kib).
    return {**publish_loop(port, messages, PAYLOAD, WINDOW, "3.1.1"), "rss_kib": peak_rss_kib()}


def bare_receive(port: int, messages: int, session: str, meter: Meter) -> dict[str, float]:
    client = _client(session, session=True)
    got = 0

    def on_message(*_: Any) -> None:
        nonlocal got
        got += 1

    client.on_message = on_message
    deadline = time.monotonic() + LIMIT
    meter.start()
    client.connect(HOST, port)
    _nodelay(client)
    while got < messages:
        _check(client.loop(timeout=1.0), deadline)
    result = meter.stop(messages)
    fence = client.publish(FENCE_TOPIC, b"", qos=1)
    while not fence.is_published():
        _check(client.loop(timeout=1.0), deadline)
    client.disconnect()
    return result


def thread_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    client = _client()
    cond = threading.Condition()
    acked = sent = 0

    def room() -> bool:
        return WINDOW - (sent - acked) >= REFILL or acked >= messages

    def on_publish(*_: Any) -> None:
        nonlocal acked
        with cond:
            acked += 1
            if room():
                cond.notify()

    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.on_publish = on_publish
    client.connect(HOST, port)
    _nodelay(client)
    client.loop_start()
    if not connected.wait(10):
        raise Stalled("no CONNACK")
    meter.start()
    with cond:
        while acked < messages:
            n = min(WINDOW - (sent - acked), messages - sent)
            sent += n
            cond.release()
            try:
                for _ in range(n):
                    client.publish(TOPIC, PAYLOAD, qos=1)
            finally:
                cond.acquire()
            if not cond.wait_for(room, LIMIT):
                raise Stalled("no PUBACK before the deadline")
    result = meter.stop(messages)
    client.disconnect()
    client.loop_stop()
    return result


def thread_receive(port: int, messages: int, session: str, meter: Meter) -> dict[str, float]:
    client = _client(session, session=True)
    done = threading.Event()
    got = 0

    def on_message(*_: Any) -> None:
        nonlocal got
        got += 1
        if got >= messages:
            done.set()

    client.on_message = on_message
    meter.start()
    client.connect(HOST, port)
    _nodelay(client)
    client.loop_start()
    if not done.wait(LIMIT):
        raise Stalled(f"received {got} of {messages}")
    result = meter.stop(messages)
    client.publish(FENCE_TOPIC, b"", qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    return result


# --- 2. the gateway's asyncio bridge --------------------------------------------------


def asyncio_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    result = asyncio.run(publish_asyncio(port, messages, PAYLOAD, WINDOW, "3.1.1"))
    return {**result, "rss_kib": peak_rss_kib()}


async def _asyncio_receive(port: int, messages: int, session: str, meter: Meter,
                           ) -> dict[str, float]:
    client = _client(session, session=True)
    loop = asyncio.get_running_loop()
    bridge = AsyncioPaho(client, loop)
    done: asyncio.Future[None] = loop.create_future()
    got = 0

    def on_message(*_: Any) -> None:
        nonlocal got
        got += 1
        if got >= messages and not done.done():
            done.set_result(None)

    client.on_message = on_message
    meter.start()
    client.connect_async(HOST, port)
    await bridge.connect()
    await asyncio.wait_for(done, LIMIT)
    result = meter.stop(messages)
    fenced = asyncio.Event()
    client.on_publish = lambda *_: fenced.set()
    client.publish(FENCE_TOPIC, b"", qos=1)
    await asyncio.wait_for(fenced.wait(), 10)
    client.disconnect()
    client.loop_write()
    bridge.close()
    return result


def asyncio_receive(port: int, messages: int, session: str, meter: Meter) -> dict[str, float]:
    return asyncio.run(_asyncio_receive(port, messages, session, meter))


# --- 3. paho used differently ---------------------------------------------------------


class _Buffered(paho.Client):
    """PRIVATE API: paho's two socket hooks, buffered (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._wbuf = bytearray()

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            self._rbuf = super()._sock_recv(65536)  # BlockingIOError passes through
            self._rpos = 0
        chunk = self._rbuf[self._rpos:self._rpos + bufsize]
        self._rpos += len(chunk)
        return chunk

    def _sock_send(self, buf: bytes | bytearray) -> int:
        self._wbuf += buf
        return len(buf)

    def _sock_close(self) -> None:
        if self._wbuf and self.socket() is not None:
            self.flush()  # the DISCONNECT paho believes it sent
        super()._sock_close()

    def buffered(self) -> bool:
        return self._rpos < len(self._rbuf)

    def flush(self) -> None:
        sock = self.socket()
        assert isinstance(sock, socket.socket)
        view = memoryview(self._wbuf)
        while view:
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                select.select([], [sock], [], 1.0)
        view.release()
        self._wbuf.clear()


def _own_loop_connect(client: paho.Client, port: int) -> socket.socket:
    client.connect(HOST, port)  # no loop(), so no wake-up socket pair
    _nodelay(client)
    sock = client.socket()
    assert isinstance(sock, socket.socket)
    if isinstance(client, _Buffered):
        client.flush()
    return sock


def _turn(client: paho.Client, sock: socket.socket, progress: list[int], misc: list[float],
          ) -> None:
    """One turn of our own loop: wait for the socket, read while reads yield packets."""
    if isinstance(client, _Buffered):
        client.flush()  # what publish() queued
    readable, _, _ = select.select([sock], [sock] if client.want_write() else [], [], 1.0)
    if readable:
        while True:
            before = progress[0]
            rc = client.loop_read()
            if rc != paho.MQTT_ERR_SUCCESS:
                raise Stalled(f"paho: {paho.error_string(rc)}")
            buffered = isinstance(client, _Buffered) and client.buffered()
            if progress[0] == before and not buffered:
                break
    if client.want_write():
        client.loop_write()
    if isinstance(client, _Buffered):
        client.flush()
    now = time.monotonic()
    if now - misc[0] >= 1.0:  # keep-alive, as loop() would, but once a second
        misc[0] = now
        client.loop_misc()


def _tuned_publish(port: int, messages: int, meter: Meter, cls: type[paho.Client],
                   ) -> dict[str, float]:
    client = _client(cls=cls)
    progress = [0]  # PUBACKs seen
    misc = [time.monotonic()]

    def on_publish(*_: Any) -> None:
        progress[0] += 1

    client.on_publish = on_publish
    sock = _own_loop_connect(client, port)
    deadline = time.monotonic() + LIMIT
    while not client.is_connected():
        _turn(client, sock, progress, misc)
        _check(paho.MQTT_ERR_SUCCESS, deadline)
    sent = 0
    meter.start()
    while progress[0] < messages:
        acked = progress[0]
        room = min(WINDOW - (sent - acked), messages - sent)
        if room > 0 and (room >= REFILL or sent == acked):
            for _ in range(room):
                client.publish(TOPIC, PAYLOAD, qos=1)
            sent += room
        _turn(client, sock, progress, misc)
        _check(paho.MQTT_ERR_SUCCESS, deadline)
    result = meter.stop(messages)
    client.disconnect()
    return result


def _tuned_receive(port: int, messages: int, session: str, meter: Meter,
                   cls: type[paho.Client]) -> dict[str, float]:
    client = _client(session, session=True, cls=cls)
    progress = [0]  # messages handed to on_message
    misc = [time.monotonic()]

    def on_message(*_: Any) -> None:
        progress[0] += 1

    client.on_message = on_message
    deadline = time.monotonic() + LIMIT
    meter.start()
    sock = _own_loop_connect(client, port)
    while progress[0] < messages:
        _turn(client, sock, progress, misc)
        _check(paho.MQTT_ERR_SUCCESS, deadline)
    result = meter.stop(messages)
    fence = client.publish(FENCE_TOPIC, b"", qos=1)
    while not fence.is_published():
        _turn(client, sock, progress, misc)
        _check(paho.MQTT_ERR_SUCCESS, deadline)
    client.disconnect()
    return result


def tuned_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    return _tuned_publish(port, messages, meter, paho.Client)


def tuned_receive(port: int, messages: int, session: str, meter: Meter) -> dict[str, float]:
    return _tuned_receive(port, messages, session, meter, paho.Client)


def private_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    return _tuned_publish(port, messages, meter, _Buffered)


def private_receive(port: int, messages: int, session: str, meter: Meter) -> dict[str, float]:
    return _tuned_receive(port, messages, session, meter, _Buffered)
