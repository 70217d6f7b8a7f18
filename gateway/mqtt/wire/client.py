"""One connection to the broker, as the publisher uses it: an ``asyncio.Protocol``.

The publisher makes a ``WireClient`` per connection (a clean session each
time: the outbox, not the client, knows what still needs sending), awaits
``connect``, calls ``publish`` and hears back through two callbacks:
``on_publish(mid, reason)`` once the broker acknowledged a QoS-1 message (a
QoS-0 one: once written), and ``on_disconnect(reason, from_broker, detail)``
once an established connection ended, for whatever cause.

What is published in one turn of the event loop goes out in one write (one
system call for a whole window refill instead of one per message).

Keep-alive with answer deadlines, connecting and the end of a connection are
``tidegate.mqtt.wire.connection``'s (shared with the ``mqtt`` driver's subscriber).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tidegate.mqtt.credentials import Secret
from tidegate.mqtt.topic_filter import filter_matches
from tidegate.mqtt.wire import packets
from tidegate.mqtt.wire.connection import ConnectFailed, OnDisconnect, WireConnection
from tidegate.mqtt.wire.packets import PUBACK, PUBLISH, SUBACK, ProtocolViolation
from tidegate.mqtt.wire.reasons import SUCCESS, Reason

__all__ = ["ConnectFailed", "OnDisconnect", "OnPublish", "WireClient"]

MAX_TOPICS = 4096
"""Encoded topic names kept for reuse, at most (templated topics can be many)."""

OnPublish = Callable[[int, Reason], None]
OnMessage = Callable[[str, bytes], None]
OnMessageWithProperties = Callable[[str, bytes, dict[int, object]], None]


@dataclass(frozen=True, slots=True)
class _Listener:
    filters: tuple[tuple[str, ...], ...]
    on_message: OnMessage | OnMessageWithProperties
    with_properties: bool


class WireClient(WireConnection):
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
        topic_aliases: bool = False,
        will_retain: bool = True,
    ) -> None:
        super().__init__(
            client_id=client_id,
            v5=v5,
            keepalive=keepalive,
            username=username,
            password=password,
            on_disconnect=on_disconnect,
        )
        self._will = (will_topic, will_payload, will_retain)
        self._on_publish = on_publish
        self._qos0: list[int] = []
        self._unsent_qos0: list[int] = []
        """QoS-0 messages written while the transport held bytes back: reported once it
        sent them all (``resume_writing``), so a stalled link stops the publisher's window."""
        self._paused = False
        self._flush_pending = False
        self._unacked: set[int] = set()
        self._mid = 0
        self._topics: dict[str, bytes] = {}
        self._listeners: list[_Listener] = []
        self._listening: dict[int, Callable[[Reason], None] | None] = {}
        """The packet ids of ``listen``'s SUBSCRIBEs until their SUBACKs, with who to tell
        of a refusal."""
        self.listen_refused: Reason | None = None
        """The broker's refusal of the ``listen`` subscription, if it refused."""
        self._use_aliases = topic_aliases and v5
        self._aliases: dict[str, bytes] = {}
        """Per topic, its Topic Alias property: set on this connection by the first
        PUBLISH that carried both, so later ones send an empty topic name instead."""

    # -- what the publisher calls ---------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, properties: bytes = b""
    ) -> int:
        """Queue a PUBLISH; its message id, or -1 when the connection is gone or going.
        ``properties``: MQTT 5 properties (``packets.content_type``); ignored on 3.1.1.

        Sent at the end of this turn of the event loop, with whatever else was
        published in it. With ``topic_aliases`` (MQTT 5, a broker that takes them),
        the first topics of messages that are not retained get an alias each, the
        broker's maximum at most, and their later messages an empty topic name.
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
            if mid not in unacked and mid not in self._listening:
                break
        self._mid = mid
        alias = self._aliases.get(topic) if self._use_aliases else None
        if alias is not None:
            name, properties = packets.EMPTY_TOPIC, properties + alias
        else:
            known = self._topics.get(topic)
            if known is None:
                if len(self._topics) >= MAX_TOPICS:
                    self._topics.clear()
                known = self._topics[topic] = packets.topic_field(topic)
            name = known
            # Retained messages (the status, discovery configs) go once per connection:
            # the broker's few aliases are kept for the topics that repeat.
            if self._use_aliases and not retain and len(self._aliases) < self.topic_alias_maximum:
                # Sent with its name this once: the broker learns the alias from it.
                alias = self._aliases[topic] = packets.topic_alias(len(self._aliases) + 1)
                properties += alias
        self._out.append(
            packets.publish(name, payload, qos, retain, mid, v5=self.v5, properties=properties)
        )
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

    def listen(
        self,
        topic_filter: str | Sequence[str],
        on_message: OnMessage | OnMessageWithProperties,
        on_refused: Callable[[Reason], None] | None = None,
        *,
        qos: int = 0,
        with_properties: bool = False,
    ) -> None:
        """Subscribe to ``topic_filter`` at ``qos`` on this connection, and hand each message
        it matches to ``on_message(topic, payload)`` on the event loop (with
        ``with_properties``: ``on_message(topic, payload, properties)``, the MQTT 5
        properties as ``packets.properties`` reads them; empty on 3.1.1). For the few
        messages a publisher heeds (Home Assistant's birth message, the cloud's commands),
        not for a stream of data. Several filters go in one SUBSCRIBE; a refusal of any of
        them is reported. Each call adds a listener: a message is handed to every
        listener one of whose filters it matches."""
        filters = [topic_filter] if isinstance(topic_filter, str) else list(topic_filter)
        if not self._connected or self._transport is None or self._ended is not None:
            return
        mid = self._mid = self._mid + 1 if self._mid < 0xFFFF else 1
        while mid in self._unacked or mid in self._listening:
            mid = self._mid = mid + 1 if mid < 0xFFFF else 1
        levels = tuple(tuple(f.split("/")) for f in filters)
        self._listeners.append(_Listener(levels, on_message, with_properties))
        self._listening[mid] = on_refused
        self._out.append(packets.subscribe(mid, [(f, qos) for f in filters], v5=self.v5))
        self._flush()

    @property
    def subscribing(self) -> bool:
        """A SUBSCRIBE of ``listen``'s is out and its SUBACK not in yet."""
        return bool(self._listening)

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Paused as soon as the transport holds anything back: a QoS-0 message counts as
        # sent only once all of it is in the kernel's socket (as "written to the socket").
        assert isinstance(transport, asyncio.Transport)
        transport.set_write_buffer_limits(high=0)
        # Topic aliases belong to one network connection: none carried over, even if a
        # client were ever connected twice (the publisher makes one per connection).
        self._aliases.clear()
        self.topic_alias_maximum = 0
        super().connection_made(transport)

    def _connect_packet(self, password: bytes | None) -> bytes:
        will_topic, will_payload, will_retain = self._will
        return packets.connect(
            client_id=self.client_id,
            v5=self.v5,
            keepalive=int(self.keepalive),
            username=self._username,
            password=password,
            will_topic=will_topic,
            will_payload=will_payload,
            will_retain=will_retain,
        )

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
                elif kind == PUBLISH and self._connected:
                    self._answer_publish(flags, body)
                elif kind == SUBACK and self._listening:
                    self._subscribed(body)
                else:
                    self._control(kind, body)
        except ProtocolViolation as exc:
            self._give_up(str(exc))
            return
        now = self._last_heard = time.monotonic()
        self._waiting_since = now if self._unacked or self._ping_out else None

    # -- inside -----------------------------------------------------------------------------

    def _answer_publish(self, flags: int, body: bytes) -> None:
        """A PUBLISH from the broker: acknowledged, and handed to ``listen``'s callback."""
        qos = (flags >> 1) & 0x03
        if qos > 1:
            raise ProtocolViolation(f"the broker sent a QoS {qos} message")
        if len(body) < 2:
            raise ProtocolViolation("a PUBLISH shorter than its topic's length")
        at = 2 + int.from_bytes(body[:2], "big")
        topic = body[2:at]
        if qos == 1:
            if len(body) < at + 2:
                raise ProtocolViolation("a QoS 1 PUBLISH without its packet id")
            self._out.append(packets.puback(int.from_bytes(body[at : at + 2], "big")))
            self._flush()
            at += 2
        if not self._listeners:
            return
        try:
            name = topic.decode()
        except UnicodeDecodeError:
            raise ProtocolViolation("a PUBLISH whose topic is not UTF-8") from None
        levels = name.split("/")
        heard = [
            listener
            for listener in self._listeners
            if any(filter_matches(f, levels) for f in listener.filters)
        ]
        if not heard:
            return
        props: dict[int, object] = {}
        if self.v5:
            if any(listener.with_properties for listener in heard):
                props = packets.properties(body, at)
            length, at = packets.read_varint(body, at)
            at += length
        payload = body[at:]
        for listener in heard:
            if listener.with_properties:
                listener.on_message(name, payload, props)  # type: ignore[call-arg]
            else:
                listener.on_message(name, payload)  # type: ignore[call-arg]

    def _subscribed(self, body: bytes) -> None:
        got, reasons = packets.suback_of(body, self.v5)
        if got not in self._listening:
            raise ProtocolViolation(f"a SUBACK for packet {got}, which was not sent")
        on_refused = self._listening.pop(got)
        refused = next((r for r in reasons if r.is_failure), None)
        if refused is not None:
            self.listen_refused = refused
            if on_refused is not None:
                on_refused(refused)

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
