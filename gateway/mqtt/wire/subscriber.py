"""One connection that subscribes, as the ``mqtt`` driver uses it: QoS 0 and 1.

The driver's link makes a ``WireSubscriber`` per connection, awaits ``connect``
(a persistent session when ``clean`` is off: the broker may then say it kept one,
and starts sending what it queued right after the CONNACK), awaits ``subscribe``
(one reason code per filter; a failure code is a refused filter), and hears each
message through ``on_message`` and the end of the connection through
``on_disconnect``. Acknowledgements are the caller's: ``ack`` sends the PUBACKs of
messages whose events are safe, on this connection only (message ids belong to
it). Keep-alive and connecting are ``tidegate.mqtt.wire.connection``'s.

Flow control, as the paho link's burst reader did it: after each message ``room``
is asked whether the caller takes more now; when it says no, reading stops
(``pause_reading``; what was already read waits here, unparsed) until the event
loop has had a turn, so the caller's pump runs before more comes in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from tidegate.mqtt.credentials import Secret
from tidegate.mqtt.wire import packets
from tidegate.mqtt.wire.connection import ConnectFailed, OnDisconnect, WireConnection
from tidegate.mqtt.wire.packets import PUBLISH, SUBACK, ProtocolViolation
from tidegate.mqtt.wire.reasons import Reason

HOLD_PACE = 0.001
"""Seconds between two messages read while the caller has no room for them."""


class Message:
    """A message from the broker; ``topic`` raises UnicodeDecodeError when the broker sent
    a topic that is not UTF-8 (as paho's does), ``mid`` is 0 at QoS 0."""

    __slots__ = ("_topic", "dup", "mid", "payload", "qos", "retain")

    def __init__(self, topic: bytes, payload: bytes, first: int, mid: int) -> None:
        """``first``: the PUBLISH's first byte (its flags)."""
        self._topic = topic
        self.payload = payload
        self.qos = (first >> 1) & 0x03
        self.retain = bool(first & 0x01)
        self.dup = bool(first & 0x08)
        self.mid = mid

    @property
    def topic(self) -> str:
        return self._topic.decode()

    @property
    def topic_bytes(self) -> bytes:
        return self._topic


OnMessage = Callable[[Message], None]


class WireSubscriber(WireConnection):
    def __init__(
        self,
        *,
        client_id: str,
        v5: bool,
        keepalive: float,
        username: str | None,
        password: Secret | None,
        clean: bool,
        session_expiry: int,
        on_message: OnMessage,
        on_disconnect: OnDisconnect,
        room: Callable[[], bool],
    ) -> None:
        super().__init__(
            client_id=client_id,
            v5=v5,
            keepalive=keepalive,
            username=username,
            password=password,
            on_disconnect=on_disconnect,
        )
        self.clean = clean
        self._session_expiry = session_expiry
        self._on_message = on_message
        self._room = room
        self._suback: tuple[int, asyncio.Future[list[Reason]]] | None = None
        self._mid = 0
        self._chunks: list[bytes] = []
        """Bytes read and not parsed yet: an incomplete packet, or what waits for room."""
        self._have = 0
        self._need = 0
        """Bytes the incomplete packet in ``_chunks`` needs in all (0: not known yet)."""
        self._held = False

    # -- what the link calls ----------------------------------------------------------------

    async def subscribe(self, filters: Sequence[tuple[str, int]]) -> list[Reason]:
        """SUBSCRIBE to ``(filter, qos)`` pairs; the SUBACK's reason code for each.

        Raises ConnectFailed when the connection ends first."""
        if not self._connected or self._transport is None or self._ended is not None:
            # The broker's own reason (a DISCONNECT right after the CONNACK), if it gave one.
            raise ConnectFailed(self._ended[1] if self._ended is not None else "not connected")
        assert self._loop is not None
        self._mid = self._mid % 0xFFFF + 1
        future: asyncio.Future[list[Reason]] = self._loop.create_future()
        self._suback = (self._mid, future)
        self._out.append(packets.subscribe(self._mid, filters, v5=self.v5))
        self._flush()
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        try:
            reasons = await future
        finally:
            self._suback = None
        if len(reasons) != len(filters):
            self._give_up(f"a SUBACK with {len(reasons)} reason codes for {len(filters)} filters")
            raise ConnectFailed("malformed SUBACK")
        return reasons

    def ack(self, mids: list[int]) -> None:
        """PUBACK these QoS 1 messages (of this connection), in one write."""
        if not mids or self._transport is None or self._ended is not None:
            return
        self._out += map(packets.puback, mids)
        self._flush()

    def close(self, *, goodbye: bool) -> None:
        """End the connection and report nothing more: with a DISCONNECT while it works
        (``goodbye``), else at once."""
        self._closed = True
        self._fail_suback("connection closed")
        if goodbye and self._ended is None:
            self.disconnect()
        else:
            self.abort()

    # -- asyncio.Protocol -------------------------------------------------------------------

    def _connect_packet(self, password: bytes | None) -> bytes:
        return packets.connect(
            client_id=self.client_id,
            v5=self.v5,
            keepalive=int(self.keepalive),
            username=self._username,
            password=password,
            will_topic=None,
            clean=self.clean,
            session_expiry=0 if self.clean else self._session_expiry,
        )

    def data_received(self, data: bytes) -> None:
        if self._chunks or self._held:  # held: a TLS transport may still hand on what it had
            if not self._chunks:
                self._have = self._need = 0
            self._chunks.append(data)
            self._have += len(data)
            if self._held or self._have < self._need:
                # A large message coming in pieces (joined once, when whole) is the broker
                # talking: the answer it owes (a PINGRESP) is queued behind it.
                now = self._last_heard = time.monotonic()
                if self._waiting_since is not None:
                    self._waiting_since = now
                return
            data = b"".join(self._chunks)
            self._chunks = []
        self._parse(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._fail_suback(f"connection lost ({self._ended[1] if self._ended else exc})")

    # -- inside -----------------------------------------------------------------------------

    def _fail_suback(self, detail: str) -> None:
        if self._suback is not None and not self._suback[1].done():
            self._suback[1].set_exception(ConnectFailed(detail))

    def _parse(self, data: bytes) -> None:
        """Hand on every whole packet in ``data``; keep the rest for later."""
        pos, end, v5 = 0, len(data), self.v5
        on_message, room = self._on_message, self._room
        need = 0
        try:
            while pos + 2 <= end:
                first = data[pos]
                length, at = data[pos + 1], pos + 2
                if length & 0x80:
                    length, at = packets.varint_at(data, pos + 1)
                    if at < 0:
                        break  # the length itself is not all here yet
                stop = at + length
                if stop > end:
                    need = stop - pos
                    break
                kind = first >> 4
                if kind == PUBLISH and self._connected:
                    qos = (first >> 1) & 0x03
                    topic_at = at + 2
                    topic_end = topic_at + ((data[at] << 8) | data[at + 1])
                    mid = 0
                    if qos:
                        if qos > 1:
                            raise ProtocolViolation(f"the broker sent a QoS {qos} message")
                        mid = (data[topic_end] << 8) | data[topic_end + 1]
                        at = topic_end + 2
                    else:
                        at = topic_end
                    if v5:
                        skip, at = _property_length(data, at)
                        at += skip
                    if at > stop:
                        raise ProtocolViolation("malformed PUBLISH: longer than the packet")
                    pos = stop
                    on_message(Message(data[topic_at:topic_end], data[at:stop], first, mid))
                    if not room():
                        self._hold()
                        break
                    continue
                body = data[at:stop]
                pos = stop
                if kind == SUBACK:
                    self._suback_received(body)
                else:
                    self._control(kind, body)
        except (ProtocolViolation, IndexError) as exc:
            # IndexError: a PUBLISH whose fields run past its end.
            self._give_up(str(exc) if isinstance(exc, ProtocolViolation) else "malformed PUBLISH")
            return
        if pos < end:
            rest = data[pos:] if pos else data
            self._chunks = [rest]
            self._have = len(rest)
            self._need = need
        now = self._last_heard = time.monotonic()
        self._waiting_since = now if self._suback is not None or self._ping_out else None

    def _hold(self) -> None:
        """Stop reading for a moment: the caller's pump goes first. While the caller has
        no room, messages are read at most one per ``HOLD_PACE`` (a QoS 0 one beyond its
        room is dropped: reading faster would only spend the CPU its pipeline needs on
        dropping more)."""
        transport, loop = self._transport, self._loop
        if transport is None or loop is None:
            return
        self._held = True
        transport.pause_reading()
        loop.call_later(HOLD_PACE, self._go_on)

    def _go_on(self) -> None:
        self._held = False
        transport = self._transport
        if transport is None or self._closed:
            return
        if self._chunks and self._have >= self._need:
            data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
            self._chunks = []
            self._parse(data)
        if not self._held and self._transport is not None:
            self._transport.resume_reading()

    def _suback_received(self, body: bytes) -> None:
        mid, reasons = packets.suback_of(body, self.v5)
        if self._suback is None or self._suback[0] != mid:
            raise ProtocolViolation(f"a SUBACK for packet {mid}, which was not sent")
        future, self._suback = self._suback[1], None  # answered: no longer due
        if not future.done():
            future.set_result(reasons)


def _property_length(data: bytes, at: int) -> tuple[int, int]:
    if data[at] < 0x80:  # the usual: a few bytes of properties, or none
        return data[at], at + 1
    return packets.read_varint(data, at)
