"""One connection to the broker, as the publisher uses it: an ``asyncio.Protocol``.

The publisher makes a ``WireClient`` per connection (a clean session each
time: the outbox, not the client, knows what still needs sending), awaits
``connect``, calls ``publish`` and hears back through two callbacks:
``on_publish(mid, reason)`` once the broker acknowledged a QoS-1 message (a
QoS-0 one: once written), and ``on_disconnect(reason, from_broker, detail)``
once an established connection ended, for whatever cause.

What is published in one turn of the event loop goes out in one write (one
system call for a whole window refill instead of one per message).

Keep-alive: a PINGREQ after ``keepalive / 2`` without sending or without
hearing from the broker, and the connection is given up when the broker has
left a PUBLISH or a PINGREQ unanswered for ``keepalive`` seconds with nothing
heard from it meanwhile (a dead NAT or a pulled cable sends no RST): found
within about 1.5 times the keep-alive on an idle link, within about one on a
busy one. On a slow link one large message may take longer than the keep-alive
to get out, and its answer cannot come before; so while bytes of ours are still
on their way, the broker's TCP acknowledging more of them counts as hearing
from it (read at each keep-alive tick from the kernel: Linux's TCP_INFO and
SIOCOUTQ; elsewhere, from the transport's buffer shrinking). A dead link
acknowledges nothing, so it is found as before. The limit: beyond a middlebox
that acknowledges on the broker's behalf (a TCP-splitting proxy), a dead link is
found only once that middlebox stops taking our bytes, not while a large message
still trickles into it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from tidegate.errors import TidegateError
from tidegate.mqtt.credentials import Secret
from tidegate.mqtt.wire import packets
from tidegate.mqtt.wire.packets import (
    CONNACK,
    DISCONNECT,
    MAXIMUM_PACKET_SIZE,
    PINGRESP,
    PUBACK,
    PUBLISH,
    RECEIVE_MAXIMUM,
    SERVER_KEEP_ALIVE,
    ConnAck,
    ProtocolViolation,
)
from tidegate.mqtt.wire.reasons import LOST, SUCCESS, Reason
from tidegate.mqtt.wire.sending import send_state

MAX_TOPICS = 4096
"""Encoded topic names kept for reuse, at most (templated topics can be many)."""

OnPublish = Callable[[int, Reason], None]
OnDisconnect = Callable[[Reason, bool, str], None]


class ConnectFailed(TidegateError):
    """A connection attempt that did not get as far as a CONNACK."""


class WireClient(asyncio.Protocol):
    def __init__(
        self,
        *,
        client_id: str,
        v5: bool,
        keepalive: float,
        username: str | None,
        password: Secret | None,
        will_topic: str,
        will_payload: bytes,
        on_publish: OnPublish,
        on_disconnect: OnDisconnect,
    ) -> None:
        self.client_id = client_id
        self.v5 = v5
        self.keepalive = keepalive
        self._username = username
        self._password = password
        self._will = (will_topic, will_payload)
        self._on_publish = on_publish
        self._on_disconnect = on_disconnect
        self.max_packet: int | None = None
        """MQTT 5: the largest packet the broker takes, if it said."""
        self.receive_maximum = 65535
        """MQTT 5: QoS-1 messages the broker takes unacknowledged at once."""
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connack: asyncio.Future[ConnAck] | None = None
        self._connected = False
        self._closed = False
        """``abort`` was called: nothing more is reported."""
        self._buffer = b""
        self._out: list[bytes] = []
        self._qos0: list[int] = []
        self._unsent_qos0: list[int] = []
        """QoS-0 messages written while the transport held bytes back: reported once it
        sent them all (``resume_writing``), so a stalled link stops the publisher's window."""
        self._paused = False
        self._flush_pending = False
        self._unacked: set[int] = set()
        self._mid = 0
        self._topics: dict[str, bytes] = {}
        self._last_sent = 0.0
        self._last_heard = 0.0
        self._waiting_since: float | None = None
        """When the broker was last heard while an answer was due; None: none is due."""
        self._ping_out = False
        self._acked = 0
        """Bytes of ours the broker's TCP had acknowledged at the last tick."""
        self._queued = 0
        """Bytes of ours still on their way at the last tick."""
        self._timer: asyncio.TimerHandle | None = None
        self._ended: tuple[Reason, str] | None = None
        """Why the connection ends, when known before it closes (the broker's
        DISCONNECT, a keep-alive timeout, a protocol violation)."""
        self._from_broker = False

    # -- what the publisher calls ---------------------------------------------------------

    async def connect(
        self, host: str, port: int, tls: ssl.SSLContext | None, *, give_up_after: float
    ) -> ConnAck:
        """Open the connection and send CONNECT; the broker's CONNACK (which may refuse).

        Raises ConnectFailed when no CONNACK came (refused, unreachable, TLS, timeout).
        """
        loop = self._loop = asyncio.get_running_loop()
        self._connack = loop.create_future()
        try:
            async with asyncio.timeout(give_up_after):
                await loop.create_connection(
                    lambda: self, host, port, ssl=tls, server_hostname=host if tls else None
                )
                ack = await self._connack
        except TimeoutError:
            self.abort()
            raise ConnectFailed(f"no answer within {give_up_after:g} s") from None
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self.abort()
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        if ack.reason.is_failure:
            self.abort()
        return ack

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        """Queue a PUBLISH; its message id, or -1 when the connection is gone or going.

        Sent at the end of this turn of the event loop, with whatever else was
        published in it.
        """
        if not self._connected or self._transport is None or self._ended is not None:
            # _ended: after our DISCONNECT or the broker's, or a violation, the connection
            # is on its way out; a write now would be dropped unsent.
            return -1
        unacked = self._unacked
        if len(unacked) >= 0xFFFF:
            return -1
        mid = self._mid
        while True:
            mid = mid + 1 if mid < 0xFFFF else 1
            if mid not in unacked:
                break
        self._mid = mid
        name = self._topics.get(topic)
        if name is None:
            if len(self._topics) >= MAX_TOPICS:
                self._topics.clear()
            name = self._topics[topic] = packets.topic_field(topic)
        self._out.append(packets.publish(name, payload, qos, retain, mid, v5=self.v5))
        if qos:
            if not unacked and self._waiting_since is None:
                self._waiting_since = time.monotonic()
            unacked.add(mid)
        else:
            self._qos0.append(mid)
        if not self._flush_pending:
            self._flush_pending = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)
        return mid

    def disconnect(self) -> None:
        """Send what is queued and a DISCONNECT (no Last Will), then close."""
        transport = self._transport
        if transport is None:
            return
        self._flush()
        self._stop_timer()
        transport.write(packets.DISCONNECT_PACKET)
        self._ended = (SUCCESS, "disconnected")
        transport.close()

    def abort(self) -> None:
        """Close at once, without DISCONNECT (the broker sends the Last Will); report nothing."""
        self._closed = True
        self._connected = False
        self._stop_timer()
        if self._connack is not None and not self._connack.done():
            self._connack.cancel()  # nobody awaits it any more
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._closed:
            transport.abort()  # the attempt was given up meanwhile
            return
        self._transport = transport
        # Paused as soon as the transport holds anything back: a QoS-0 message counts as
        # sent only once all of it is in the kernel's socket (as "written to the socket").
        transport.set_write_buffer_limits(high=0)
        password = self._password.reveal().encode() if self._password is not None else None
        will_topic, will_payload = self._will
        transport.write(
            packets.connect(
                client_id=self.client_id,
                v5=self.v5,
                keepalive=int(self.keepalive),
                username=self._username,
                password=password,
                will_topic=will_topic,
                will_payload=will_payload,
            )
        )
        self._last_sent = self._last_heard = time.monotonic()

    def data_received(self, data: bytes) -> None:
        try:
            found, self._buffer = packets.frames(self._buffer + data if self._buffer else data)
            for kind, flags, body in found:
                if kind == PUBACK:
                    if len(body) == 2:  # success, the common case
                        mid, reason = (body[0] << 8) | body[1], SUCCESS
                    else:
                        mid, reason = packets.puback_of(body)
                    if mid in self._unacked:
                        self._unacked.remove(mid)
                        self._on_publish(mid, reason)
                elif kind == CONNACK:
                    self._connack_received(body)
                elif kind == PINGRESP:
                    self._ping_out = False
                elif kind == DISCONNECT:
                    reason, text = packets.disconnect_of(body, self.v5)
                    self._ended = (reason, f"{reason} ({text})" if text else str(reason))
                    self._from_broker = True
                elif kind == PUBLISH and self._connected:
                    self._answer_publish(flags, body)
                else:
                    raise ProtocolViolation(f"unexpected packet of type {kind} from the broker")
        except ProtocolViolation as exc:
            self._give_up(str(exc))
            return
        now = self._last_heard = time.monotonic()
        self._waiting_since = now if self._unacked or self._ping_out else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._stop_timer()
        reason, detail = self._ended or (LOST, str(exc) if exc else "closed by the broker")
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(ConnectFailed(f"connection closed ({detail})"))
        if self._connected and not self._closed:
            self._connected = False
            self._closed = True
            self._on_disconnect(reason, self._from_broker, detail)

    # -- inside -----------------------------------------------------------------------------

    def _connack_received(self, body: bytes) -> None:
        if self._connack is None or self._connack.done():
            raise ProtocolViolation("a second CONNACK from the broker")
        ack = packets.connack(body, self.v5)
        if ack.session_present and not ack.reason.is_failure:
            raise ProtocolViolation("the broker resumed a session; a clean one was asked for")
        props = ack.properties
        size = props.get(MAXIMUM_PACKET_SIZE)
        if isinstance(size, int):
            if size == 0:
                raise ProtocolViolation("the broker announced a Maximum Packet Size of 0")
            self.max_packet = size
        receive = props.get(RECEIVE_MAXIMUM)
        if isinstance(receive, int) and receive > 0:
            self.receive_maximum = receive
        keepalive = props.get(SERVER_KEEP_ALIVE)
        if isinstance(keepalive, int) and keepalive > 0:
            self.keepalive = keepalive
        if not ack.reason.is_failure:
            self._connected = True
            self._schedule_tick()
        self._connack.set_result(ack)

    def _answer_publish(self, flags: int, body: bytes) -> None:
        """A PUBLISH from the broker (nothing is subscribed: only acknowledged)."""
        qos = (flags >> 1) & 0x03
        if qos == 1 and len(body) >= 4:
            at = 2 + int.from_bytes(body[:2], "big")
            self._out.append(packets.puback(int.from_bytes(body[at : at + 2], "big")))
            self._flush()
        elif qos > 1:
            raise ProtocolViolation(f"the broker sent a QoS {qos} message")

    def _flush(self) -> None:
        self._flush_pending = False
        transport = self._transport
        if transport is None or not self._out or transport.is_closing():
            return  # unreported: still in the outbox, sent again on the next connection
        out = self._out
        transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        self._last_sent = time.monotonic()
        if self._qos0:
            done, self._qos0 = self._qos0, []
            if self._paused:  # not all in the socket yet (write() paused us if so)
                self._unsent_qos0 += done
                return
            for mid in done:
                self._on_publish(mid, SUCCESS)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        done, self._unsent_qos0 = self._unsent_qos0, []
        for mid in done:
            if self._closed:
                return
            self._on_publish(mid, SUCCESS)

    def _give_up(self, detail: str) -> None:
        """End the connection from our side, reporting ``detail`` as the cause."""
        if self._ended is None:
            self._ended = (LOST, detail)
        if self._transport is not None:
            self._transport.abort()

    def _schedule_tick(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(max(0.5, self.keepalive / 4), self._tick)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None:
            return
        now = time.monotonic()
        if self._sending_goes_on(transport) and self._waiting_since is not None:
            # The link is alive, only slow: one large message may take longer than the
            # keep-alive to get through, and its answer cannot come before.
            self._waiting_since = now
        waiting = self._waiting_since
        if waiting is not None and now - waiting > self.keepalive:
            self._give_up(f"no answer from the broker for {self.keepalive:g} s (keep-alive)")
            return
        # Also when sending all along but hearing nothing: QoS-0 messages are never
        # answered, so without a PINGREQ a dead link would go unnoticed while they flow.
        quiet = now - min(self._last_sent, self._last_heard)
        if not self._ping_out and quiet >= self.keepalive / 2:
            self._flush()
            transport.write(packets.PINGREQ_PACKET)
            self._last_sent = now
            self._ping_out = True
            if self._waiting_since is None:
                self._waiting_since = now
        self._schedule_tick()

    def _sending_goes_on(self, transport: asyncio.Transport) -> bool:
        """Whether bytes of ours are still on their way to the broker and its TCP
        acknowledged more of them since the last tick."""
        acked, queued = send_state(transport)
        if acked is not None:
            moved, self._acked = acked > self._acked, acked
        else:  # where the kernel does not say: our own buffer shrinking
            moved = queued < self._queued
        self._queued = queued
        # Once nothing of ours is left on the way, nothing stands before the answer. Nor
        # is a middlebox that acknowledges on the broker's behalf taken for life then:
        # ours pass through it at once, however dead the link beyond.
        return moved and queued > 0
