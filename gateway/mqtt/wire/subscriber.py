"""One connection that subscribes, as the ``mqtt`` driver uses it: QoS 0 and 1.

The driver's link makes a ``WireSubscriber`` per connection, awaits ``connect``
(a persistent session when ``clean`` is off: the broker may then say it kept one,
and starts sending what it queued right after the CONNACK), awaits ``subscribe``
(one reason code per filter; a failure code is a refused filter), and hears each
message through ``on_message`` and the end of the connection through
``on_disconnect``. Acknowledgements are the caller's: ``ack`` sends the PUBACKs of
messages whose events are safe, on this connection only (message ids belong to
it). Keep-alive and connecting are ``tidegate.mqtt.wire.connection``'s.

The driver also publishes on it (an action: Tasmota's ``cmnd/.../POWER``):
``publish`` at QoS 0, or at QoS 1 returning the PUBACK's reason code. Its packet
ids share one space with SUBSCRIBE's (the broker's PUBACK and SUBACK name them);
the ids of messages the broker sends are the broker's own.

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
from tidegate.mqtt.wire.packets import PUBACK, PUBLISH, SUBACK, ProtocolViolation
from tidegate.mqtt.wire.reasons import SUCCESS, Reason

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
        self._pubacks: dict[int, asyncio.Future[Reason]] = {}
        """Our QoS 1 publishes waiting for their PUBACK, by packet id."""
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
        mid = self._next_mid()
        future: asyncio.Future[list[Reason]] = self._loop.create_future()
        self._suback = (mid, future)
        self._out.append(packets.subscribe(mid, filters, v5=self.v5))
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

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> Reason:
        """PUBLISH ``payload`` to ``topic`` at QoS 0 (SUCCESS once handed to the socket)
        or 1 (the PUBACK's reason code, which may be a failure in MQTT 5).

        Raises ConnectFailed when not connected or when the connection ends before the
        PUBACK (the broker may or may not have taken the message), ValueError for a
        message the broker said it would not take (its Maximum Packet Size)."""
        if not self._connected or self._transport is None or self._ended is not None:
            raise ConnectFailed(self._ended[1] if self._ended is not None else "not connected")
        assert self._loop is not None
        mid = self._next_mid() if qos else 0
        packet = packets.publish(
            packets.topic_field(topic), payload, qos, retain, mid, v5=self.v5
        )
        if self.max_packet is not None and len(packet) > self.max_packet:
            raise ValueError(
                f"{len(packet):,} bytes: more than the broker takes ({self.max_packet:,})"
            )
        if not qos:
            self._out.append(packet)
            self._flush()
            return SUCCESS
        future: asyncio.Future[Reason] = self._loop.create_future()
        self._pubacks[mid] = future
        self._out.append(packet)
        self._flush()
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        try:
            return await future
        finally:
            self._pubacks.pop(mid, None)

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

    def _next_mid(self) -> int:
        """A packet id that no SUBSCRIBE or PUBLISH of ours waiting for its answer uses."""
        while True:
            self._mid = self._mid % 0xFFFF + 1
            if self._mid not in self._pubacks and (
                self._suback is None or self._suback[0] != self._mid
            ):
                return self._mid

    def _fail_suback(self, detail: str) -> None:
        """The connection ended: what waits for the broker's answer never gets it."""
        if self._suback is not None and not self._suback[1].done():
            self._suback[1].set_exception(ConnectFailed(detail))
        for future in self._pubacks.values():
            if not future.done():
                future.set_exception(ConnectFailed(detail))

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
                elif kind == PUBACK:
                    self._puback_received(body)
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
        due = self._suback is not None or self._ping_out or self._pubacks
        self._waiting_since = now if due else None

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

    def _puback_received(self, body: bytes) -> None:
        mid, reason = packets.puback_of(body)
        future = self._pubacks.pop(mid, None)
        # None: a PUBACK that came after its publisher stopped waiting (a timeout); late,
        # not wrong.
        if future is not None and not future.done():
            future.set_result(reason)


def _property_length(data: bytes, at: int) -> tuple[int, int]:
    if data[at] < 0x80:  # the usual: a few bytes of properties, or none
        return data[at], at + 1
    return packets.read_varint(data, at)
