"""The send window: messages published on the current connection and not yet
acknowledged, at most ``mqtt.max_inflight`` of them, refilled from the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence

from tidegate.config.schema import MqttSection
from tidegate.mqtt.wire import WireClient
from tidegate.outbox import Row
from tidegate.payload import join_payloads
from tidegate.uplink.batches import Message, group_messages

MAX_TAKE = 20000
"""Outbox rows read at once, at most."""


class SendWindow:
    """What one connection has in flight, by message id, and where its reading stands."""

    def __init__(self, mqtt: MqttSection) -> None:
        self.configured = mqtt.max_inflight
        self.max_inflight = mqtt.max_inflight
        self.per_message = mqtt.events_per_message
        # Refill in large steps: a take per PUBACK would cost an outbox round trip
        # per message (measured: ~30% of the CPU at one event per message).
        self._refill = max(1, mqtt.max_inflight // 2)
        self.inflight: dict[int, Message] = {}
        self.cursors = [0, 0, 0]
        """Per priority class, the last outbox row packed on this connection: what did
        not fit comes back at the next take (the outbox keeps it at hand)."""

    def connected(self, receive_maximum: int) -> None:
        """A new connection: never more in flight than the broker takes (MQTT 5's
        Receive Maximum; 65,535 when it did not say)."""
        self.max_inflight = min(self.configured, receive_maximum)
        self._refill = max(1, self.max_inflight // 2)

    def __len__(self) -> int:
        return len(self.inflight)

    def room(self) -> int:
        """Messages to add now: 0 until half the window is free (or it is empty)."""
        room = self.max_inflight - len(self.inflight)
        return room if room > 0 and (room >= self._refill or not self.inflight) else 0

    def rows_to_take(self, room: int) -> int:
        return min(room * self.per_message, MAX_TAKE)

    def pack(
        self, rows: Sequence[Row], room: int, max_bytes: int
    ) -> tuple[list[Message], list[Row]]:
        """Up to ``room`` messages of ``rows``, and the rows too large for any message.
        The cursors move past what was packed; the rest is taken again later."""
        too_big: list[Row] = []
        messages, consumed = group_messages(
            rows, self.per_message, room, max_bytes=max_bytes, too_big=too_big
        )
        cursors = self.cursors
        for row in rows[:consumed]:
            cursors[row.priority] = row.id  # each class comes in id order
        return messages, too_big

    def publish(self, client: WireClient, messages: Sequence[Message]) -> str | None:
        """Hand ``messages`` to the client; an error if it took not all of them."""
        for msg in messages:
            payloads = msg.payloads
            payload = payloads[0] if self.per_message == 1 else join_payloads(payloads)
            mid = client.publish(msg.topic, payload, msg.qos, msg.retain)
            if mid < 0:
                return "the connection is closed"
            # Until the PUBACK, one copy is enough: the packet's (measured at 100 events
            # per message: ~4 MB less held with a full window).
            msg.size = sum(map(len, payloads))
            msg.payloads = []
            self.inflight[mid] = msg
        return None

    def answered(self, mid: int) -> Message | None:
        """The message a PUBACK (or, at QoS 0, the write) ``mid`` is about, if it is ours."""
        return self.inflight.pop(mid, None)

    def oldest(self) -> Message | None:
        return next(iter(self.inflight.values()), None)

    def reset(self) -> None:
        """The connection is gone: what was in flight is sent again from the outbox."""
        self.inflight.clear()
        self.cursors = [0, 0, 0]
