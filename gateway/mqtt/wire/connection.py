"""What every connection of ours to a broker does, whatever it is for: an ``asyncio.Protocol``
that connects up to the CONNACK, keeps the connection alive with deadlines, and reports
its end once (the publisher's ``client`` and the ``mqtt`` driver's ``subscriber``).

Keep-alive: a PINGREQ after ``keepalive / 2`` without sending or without
hearing from the broker, and the connection is given up when the broker has
left something unanswered (a PINGREQ, a PUBLISH, a SUBSCRIBE: ``_waiting_since``)
for ``keepalive`` seconds with nothing heard from it meanwhile (a dead NAT or a
pulled cable sends no RST): found within about 1.5 times the keep-alive on an
idle link, within about one on a busy one. On a slow link one large message may
take longer than the keep-alive to get out, and its answer cannot come before; so
while bytes of ours are still on their way, the broker's TCP acknowledging more of
them counts as hearing from it (read at each keep-alive tick from the kernel:
Linux's TCP_INFO and SIOCOUTQ; elsewhere, from the transport's buffer shrinking).
A dead link acknowledges nothing, so it is found as before. The limit: beyond a
middlebox that acknowledges on the broker's behalf (a TCP-splitting proxy), a dead
link is found only once that middlebox stops taking our bytes, not while a large
message still trickles into it.
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
    RECEIVE_MAXIMUM,
    SERVER_KEEP_ALIVE,
    TOPIC_ALIAS_MAXIMUM,
    ConnAck,
    ProtocolViolation,
)
from tidegate.mqtt.wire.reasons import LOST, SUCCESS, Reason
from tidegate.mqtt.wire.sending import send_state

OnDisconnect = Callable[[Reason, bool, str], None]


class ConnectFailed(TidegateError):
    """A connection attempt that did not get as far as a CONNACK."""


class WireConnection(asyncio.Protocol):
    """One connection; a subclass says what CONNECT carries (``_connect_packet``), reads
    the broker's packets (``data_received``, handing the ones every connection knows to
    ``_control``) and may add to what ``_flush`` does."""

    clean = True
    """Whether the connection asks for a clean session (a resumed one is a protocol error)."""

    def __init__(
        self,
        *,
        client_id: str,
        v5: bool,
        keepalive: float,
        username: str | None,
        password: Secret | None,
        on_disconnect: OnDisconnect,
    ) -> None:
        self.client_id = client_id
        self.v5 = v5
        self.keepalive = keepalive
        self._username = username
        self._password = password
        self._on_disconnect = on_disconnect
        self.max_packet: int | None = None
        """MQTT 5: the largest packet the broker takes, if it said."""
        self.receive_maximum = 65535
        """MQTT 5: QoS-1 messages the broker takes unacknowledged at once."""
        self.topic_alias_maximum = 0
        """MQTT 5: topic aliases the broker takes from us on this connection (0: none)."""
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connack: asyncio.Future[ConnAck] | None = None
        self._connected = False
        self._closed = False
        """``abort`` was called: nothing more is reported."""
        self._buffer = b""
        self._out: list[bytes] = []
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

    def _connect_packet(self, password: bytes | None) -> bytes:
        raise NotImplementedError

    # -- what the user calls --------------------------------------------------------------

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
        password = self._password.reveal().encode() if self._password is not None else None
        transport.write(self._connect_packet(password))
        self._last_sent = self._last_heard = time.monotonic()

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

    def _control(self, kind: int, body: bytes) -> None:
        """The packets any connection may get: CONNACK, PINGRESP, DISCONNECT."""
        if kind == CONNACK:
            self._connack_received(body)
        elif kind == PINGRESP:
            self._ping_out = False
        elif kind == DISCONNECT:
            reason, text = packets.disconnect_of(body, self.v5)
            self._ended = (reason, f"{reason} ({text})" if text else str(reason))
            self._from_broker = True
            if self._transport is not None:
                self._transport.close()  # nothing more may come: the receiver closes too
        else:
            raise ProtocolViolation(f"unexpected packet of type {kind} from the broker")

    def _connack_received(self, body: bytes) -> None:
        if self._connack is None or self._connack.done():
            raise ProtocolViolation("a second CONNACK from the broker")
        ack = packets.connack(body, self.v5)
        if ack.session_present and self.clean and not ack.reason.is_failure:
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
        aliases = props.get(TOPIC_ALIAS_MAXIMUM)
        if isinstance(aliases, int):
            self.topic_alias_maximum = aliases
        keepalive = props.get(SERVER_KEEP_ALIVE)
        if isinstance(keepalive, int) and keepalive > 0:
            self.keepalive = keepalive
        if not ack.reason.is_failure:
            self._connected = True
            self._schedule_tick()
        self._connack.set_result(ack)

    def _flush(self) -> None:
        """Write what is queued in ``_out`` in one go."""
        transport = self._transport
        if transport is None or not self._out or transport.is_closing():
            return
        out = self._out
        transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        self._last_sent = time.monotonic()

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
