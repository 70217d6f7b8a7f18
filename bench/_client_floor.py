"""Hand-written floor (not a client): the least Python can do per QoS 1 message.

An ``asyncio.Protocol`` that speaks just enough MQTT 3.1.1 for the measurement:
CONNECT, PUBLISH QoS 1 out and PUBACK in; for receiving, PUBLISH QoS 1 in and PUBACK
out (the session's subscription already exists). A PUBLISH is a pre-encoded fixed
header and topic, the two-byte packet id and the payload; a window's worth goes out
in one ``write``; the PUBACKs of one read go out in one ``write``. No reconnects,
no keep-alive, no packet-id bookkeeping, no TLS, no errors handled: it is what any
real client's per-message cost should be compared with, not something to ship.
"""

from __future__ import annotations

import asyncio

from bench._client_common import PAYLOAD, REFILL, TOPIC, WINDOW, Meter, Stalled

HOST = "127.0.0.1"
LIMIT = 600.0
PUBACK = 0x40
PUBLISH = 0x30
CONNACK = 0x20
PINGRESP = 0xD0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str16(s: bytes) -> bytes:
    return len(s).to_bytes(2, "big") + s


def connect_packet(client_id: str, *, clean: bool) -> bytes:
    body = (_str16(b"MQTT") + bytes([4, 0x02 if clean else 0x00]) + (60).to_bytes(2, "big")
            + _str16(client_id.encode()))
    return b"\x10" + _varint(len(body)) + body


def publish_prefix(topic: str, payload_len: int) -> bytes:
    """Everything of a QoS 1 PUBLISH before its packet id."""
    name = _str16(topic.encode())
    return b"\x32" + _varint(len(name) + 2 + payload_len) + name


class _Floor(asyncio.Protocol):
    def __init__(self, messages: int, *, publishing: bool) -> None:
        self.messages = messages
        self.publishing = publishing
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.count = 0  # PUBACKs in, or PUBLISHes in
        self.sent = 0
        self.prefix = publish_prefix(TOPIC, len(PAYLOAD))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.connected, self.done, self.pong):
            if not fut.done():
                fut.set_exception(Stalled(f"connection lost: {exc}"))

    def fill(self) -> None:
        """Top the window up in one write."""
        n = min(WINDOW - (self.sent - self.count), self.messages - self.sent)
        if n <= 0:
            return
        prefix, payload, first = self.prefix, PAYLOAD, self.sent
        self.sent += n
        assert self.transport is not None
        self.transport.write(b"".join(
            [prefix + ((first + i) % 65535 + 1).to_bytes(2, "big") + payload for i in range(n)]
        ))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        end = len(buf)
        pos = 0
        acks: list[bytes] = []
        while end - pos >= 2:
            first = buf[pos]
            if first == PUBACK and buf[pos + 1] == 2:  # the common case, in full
                if end - pos < 4:
                    break
                self.count += 1
                pos += 4
                continue
            length = mult = 0
            i = pos + 1
            while i < end:
                byte = buf[i]
                length += (byte & 0x7F) << mult
                mult += 7
                i += 1
                if byte < 0x80:
                    break
            else:
                break
            if i + length > end:
                break
            kind = first & 0xF0
            if kind == PUBLISH:
                topic_len = (buf[i] << 8) | buf[i + 1]
                mid_at = i + 2 + topic_len
                acks.append(b"\x40\x02" + bytes(buf[mid_at:mid_at + 2]))
                self.count += 1
            elif kind == CONNACK and not self.connected.done():
                if buf[i + 1] != 0:
                    self.connected.set_exception(Stalled(f"CONNACK refused: {buf[i + 1]}"))
                else:
                    self.connected.set_result(None)
            elif kind == PINGRESP and not self.pong.done():
                self.pong.set_result(None)
            pos = i + length
        del buf[:pos]
        if acks:
            assert self.transport is not None
            self.transport.write(b"".join(acks))
        if self.count >= self.messages:
            if not self.done.done():
                self.done.set_result(None)
        elif self.publishing and WINDOW - (self.sent - self.count) >= REFILL:
            self.fill()


async def _run(port: int, messages: int, session: str | None, meter: Meter) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    publishing = session is None
    if not publishing:
        meter.start()
    transport, proto = await loop.create_connection(
        lambda: _Floor(messages, publishing=publishing), HOST, port
    )
    try:
        transport.write(connect_packet(session or "bench-floor", clean=publishing))
        await asyncio.wait_for(proto.connected, 10)
        if publishing:
            meter.start()
            proto.fill()
        await asyncio.wait_for(proto.done, LIMIT)
        result = meter.stop(messages)
        # PINGREQ as a fence: once answered, the broker has read every PUBACK before it.
        transport.write(b"\xc0\x00")
        await asyncio.wait_for(proto.pong, 10)
        transport.write(b"\xe0\x00")  # DISCONNECT
    finally:
        transport.close()
    return result


def floor_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    return asyncio.run(_run(port, messages, None, meter))


def floor_receive(port: int, messages: int, session: str, meter: Meter) -> dict[str, float]:
    return asyncio.run(_run(port, messages, session, meter))
