"""The send window: messages published on the current connection and not yet
acknowledged, at most ``mqtt.max_inflight`` of them, refilled from the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

from tidegate.config.schema import MqttSection
from tidegate.mqtt.wire import WireClient
from tidegate.mqtt.wire.packets import content_type, message_expiry
from tidegate.outbox import Row
from tidegate.uplink.batches import Message, group_messages
from tidegate.uplink.deliveries import Deliveries
from tidegate.uplink.expiry import age_out, any_expiring
from tidegate.uplink.formats import Announcement, FormatContext, FormatError, format_named
from tidegate.uplink.formats.offers import CommandOffer

log = logging.getLogger("tidegate.uplink.publisher")

MAX_TAKE = 20000
"""Outbox rows read at once, at most."""


class Reroute(NamedTuple):
    """How one of several uplinks sends a stored row: the first uplink's prefix (the
    one stored topics have) swapped for its own, and at most its own QoS."""

    stored_prefix: str
    prefix: str
    qos: int

    def __call__(self, row: Row) -> Row:
        topic = row.topic
        if self.prefix != self.stored_prefix and topic.startswith(self.stored_prefix + "/"):
            topic = self.prefix + topic[len(self.stored_prefix) :]
        return row._replace(topic=topic, qos=min(row.qos, self.qos))


class SendWindow:
    """What one connection has in flight, by message id, and where its reading stands."""

    def __init__(
        self,
        mqtt: MqttSection,
        status_topic: str = "tidegate/status",
        stored_prefix: str | None = None,
        *,
        prefix: str | None = None,
        gateway: str = "tidegate",
        commands: tuple[CommandOffer, ...] = (),
    ) -> None:
        self.configured = mqtt.max_inflight
        own_prefix = prefix if prefix is not None else status_topic.removesuffix("/status")
        self._reroute = (
            Reroute(stored_prefix, own_prefix, mqtt.qos)
            if stored_prefix is not None and (stored_prefix != own_prefix or mqtt.qos == 0)
            else None
        )
        """One of several uplinks: stored topics under its own prefix, at most its QoS."""
        self.max_inflight = mqtt.max_inflight
        self.per_message = mqtt.events_per_message
        self.format = format_named(
            mqtt.format,
            FormatContext(
                status_topic,
                mqtt.discovery_prefix,
                gateway,
                mqtt.sparkplug_group,
                mqtt.discovery_forget_after,
                commands,
            ),
        )
        self.live_from = 0
        """The first outbox row id accepted on the current connection: rows below it are
        replays (``Format.replayed``)."""
        self.expired: list[int] = []
        """Rows ``pack`` found past their route's expiry, for the outbox to drop."""
        self.too_old: list[int] = []
        """Rows ``pack`` found past ``max_event_age``: given up for this uplink."""
        self._max_event_age = mqtt.max_event_age
        self._v5 = mqtt.protocol == "5"
        self.announcements: list[Announcement] = []
        """What the format asked to send before the next messages (discovery configs)."""
        media_type = self.format.content_type(self.per_message > 1)
        self._properties = b"" if media_type is None else content_type(media_type)
        # Refill in large steps: a take per PUBACK would cost an outbox round trip
        # per message (measured: ~30% of the CPU at one event per message).
        self._refill = max(1, mqtt.max_inflight // 2)
        self.inflight: dict[int, Message] = {}
        self.cursors = [0, 0, 0]
        """Per priority class, the last outbox row packed on this connection: what did
        not fit comes back at the next take (the outbox keeps it at hand)."""

    def connected(self, receive_maximum: int, live_from: int = 0) -> None:
        """A new connection: never more in flight than the broker takes (MQTT 5's
        Receive Maximum; 65,535 when it did not say); rows from ``live_from`` on were
        accepted after it was made."""
        self.max_inflight = min(self.configured, receive_maximum)
        self.live_from = live_from
        self._refill = max(1, self.max_inflight // 2)
        self.announcements = self.format.reannounce()

    def __len__(self) -> int:
        return len(self.inflight)

    def room(self) -> int:
        """Messages to add now: 0 until half the window is free (or it is empty)."""
        room = self.max_inflight - len(self.inflight)
        return room if room > 0 and (room >= self._refill or not self.inflight) else 0

    def rows_to_take(self, room: int) -> int:
        return min(room * self.per_message, MAX_TAKE)

    def pack(
        self, rows: Sequence[Row], room: int, max_bytes: int, now: float | None = None
    ) -> tuple[list[Message], list[tuple[list[int], str]]]:
        """Up to ``room`` messages of ``rows``, and the rows no message can carry, with
        why (too large for any message, or not writable in the format). The cursors
        move past what was packed; the rest is taken again later. Rows past their
        route's expiry at ``now`` (None: the clock is not trusted) go to ``expired``."""
        fmt = self.format
        ages = self._max_event_age
        aged = (
            age_out(rows, now, ages)
            if now is not None and (ages is not None or any_expiring(rows))
            else None
        )
        written, origin, unwritable = self._through_format(
            rows, {*aged.expired, *aged.too_old} if aged else set()
        )
        too_big: list[Row] = []
        messages, consumed = group_messages(
            written, self.per_message, room, max_bytes=max_bytes - fmt.overhead, too_big=too_big
        )
        if fmt.reshapes:
            stored = {row.id: len(row.payload) for row in rows}
            for msg in messages:
                msg.size = sum(map(stored.__getitem__, msg.ids))
        else:
            for msg in messages:
                msg.size = sum(map(len, msg.payloads))
        if origin is not None:
            # Back to a prefix of ``rows``: the unwritable ones before the first row
            # left over go with it, the others wait for the next take.
            consumed = len(rows) if consumed == len(written) else origin[consumed]
        cursors = self.cursors
        for row in rows[:consumed]:
            cursors[row.priority] = row.id  # each class comes in id order
        refused: list[tuple[list[int], str]] = []
        if too_big:
            refused.append(
                ([r.id for r in too_big], f"larger than the broker's message limit ({max_bytes} B)")
            )
        for at, reason in unwritable:
            if at < consumed:
                refused.append(([rows[at].id], f"cannot be written as {fmt.name}: {reason}"))
        if aged is not None:
            self.expired += [rows[at].id for at in aged.expired if at < consumed]
            self.too_old += [rows[at].id for at in aged.too_old if at < consumed]
            if aged.remaining and self._v5:
                for msg in messages:
                    left = [aged.remaining[i] for i in msg.ids if i in aged.remaining]
                    msg.expiry = min(left) if left else None
        return messages, refused

    def _through_format(
        self, rows: Sequence[Row], expired: set[int]
    ) -> tuple[Sequence[Row], list[int] | None, list[tuple[int, str]]]:
        """The rows as the format writes them (the size limit applies to what is sent),
        where each came from in ``rows`` (None: the rows themselves), and the ones it
        cannot write, with why; announcements the rows call for are queued. Rows at
        the positions ``expired`` are left out (the caller says what becomes of them)."""
        fmt = self.format
        reroute = self._reroute
        if not (fmt.reshapes or fmt.replays or fmt.announces or fmt.retopics or expired or reroute):
            return rows, None, []
        written: list[Row] = []
        origin: list[int] = []
        unwritable: list[tuple[int, str]] = []
        for at, row in enumerate(rows):
            if at in expired:
                continue
            if reroute is not None:
                row = reroute(row)  # noqa: PLW2901
            stored = row.payload
            try:
                if fmt.announces:
                    self.announcements += fmt.announce(stored, row.topic)
                if fmt.retopics:
                    row = row._replace(topic=fmt.topic_for(row.topic, stored))  # noqa: PLW2901
                if fmt.replays and row.id < self.live_from:
                    row = row._replace(payload=fmt.replayed(stored))  # noqa: PLW2901
                elif fmt.reshapes:
                    row = row._replace(payload=fmt.event(stored))  # noqa: PLW2901
            except FormatError as exc:
                unwritable.append((at, str(exc)))
                continue
            written.append(row)
            origin.append(at)
        return written, origin, unwritable

    def listen(self, client: WireClient) -> None:
        """Subscribe to what the format listens to, on a new connection."""
        filters = self.format.listens()
        if filters:
            client.listen(
                filters,
                lambda topic, payload: self._heard(client, topic, payload),
                lambda reason: log.warning(
                    "the broker refused the subscription to %s (%s): %s will not hear it",
                    ", ".join(filters),
                    reason,
                    self.format.name,
                ),
            )

    def _heard(self, client: WireClient, topic: str, payload: bytes) -> None:
        if self.format.heard(topic, payload):
            self.reannounce(client)

    def reannounce(self, client: WireClient) -> None:
        """Everything the format announces, again (Home Assistant discovery, births)."""
        self.announcements = self.format.reannounce()
        self.announce(client)

    def announce(self, client: WireClient) -> None:
        """Send what the format asked to announce: QoS 0 (outside the window; the next
        connection sends it all again)."""
        sequence = self.format.sequence if self.format.sequences else None
        if self.format.supersedes:  # a dict keeps each topic's first place, its last value
            self.announcements = list({a.topic: a for a in self.announcements}.values())
        for topic, payload, retain in self.announcements:
            sent = payload if sequence is None else sequence(topic, payload)
            client.publish(topic, sent, 0, retain)
        self.announcements = []

    # -- the format's own session (``Format.will``, ``Format.farewell``) -------------------

    def will(self) -> Announcement | None:
        """The next connection's Last Will, if the format has one (None: ``offline``)."""
        return self.format.will()

    def farewell(self, client: WireClient) -> None:
        """On a clean end: what the format says before the connection goes (QoS 0)."""
        self.announcements = self.format.farewell()
        self.announce(client)

    def publish(self, client: WireClient, messages: Sequence[Message]) -> str | None:
        """Hand ``messages`` to the client, after any announcements; an error if it
        took not all of them."""
        if self.announcements:
            self.announce(client)
        batched = self.per_message > 1
        fmt = self.format
        write, common = fmt.message, self._properties
        sequence = fmt.sequence if fmt.sequences else None
        for msg in messages:
            payload = write(msg.payloads, batched=batched)
            if sequence is not None:
                payload = sequence(msg.topic, payload)
            properties = common
            if fmt.describes:
                properties += fmt.message_properties(msg.payloads)
            if msg.expiry is not None:
                properties += message_expiry(msg.expiry)
            mid = client.publish(msg.topic, payload, msg.qos, msg.retain, properties)
            if mid < 0:
                return "the connection is closed"
            # Until the PUBACK, one copy is enough: the packet's (measured at 100 events
            # per message: ~4 MB less held with a full window).
            msg.payloads = []
            self.inflight[mid] = msg
        return None

    def fill(
        self,
        client: WireClient,
        rows: Sequence[Row],
        room: int,
        max_bytes: int,
        *,
        now: float | None,
        deliveries: Deliveries,
    ) -> str | None:
        """``pack`` and ``publish`` ``rows``; what cannot go (refused, expired) is told to
        ``deliveries``. An error if the client took not every message."""
        messages, refused = self.pack(rows, room, max_bytes, now)
        if self.expired:
            deliveries.expired(self.expired)
            self.expired = []
        if self.too_old:
            deliveries.too_old(self.too_old)
            self.too_old = []
        for ids, reason in refused:
            deliveries.refused(ids, reason)
        return self.publish(client, messages)

    def answered(self, mid: int) -> Message | None:
        """The message a PUBACK (or, at QoS 0, the write) ``mid`` is about, if it is ours."""
        return self.inflight.pop(mid, None)

    def oldest(self) -> Message | None:
        return next(iter(self.inflight.values()), None)

    def reset(self) -> None:
        """The connection is gone: what was in flight is sent again from the outbox."""
        self.inflight.clear()
        self.cursors = [0, 0, 0]
