"""When a message is poison: only when the broker refused it, never for a lost connection.

A message goes to the dead letters instead of being retried when the broker
said it will not take it:

- a PUBACK with a failure reason code (MQTT 5) names the message: it is
  dead-lettered at once, with the reason (the publisher does that as the
  PUBACK arrives), except "quota exceeded" (below);
- a DISCONNECT from the broker whose reason code refuses a message (packet too
  large, payload format invalid, topic name invalid, retain or QoS not
  supported) names none: it is taken to refuse the first unacknowledged
  message in flight (a broker handles publishes in order), and only the same
  message refused ``REFUSALS_BEFORE_POISON`` times in a row, with no other
  end of connection in between, is dead-lettered.

A connection that is lost (closed, reset, timed out, or a DISCONNECT with any
other reason) never makes a message poison, however often it happens with the
same message in flight: a link that drops every connection right after it is
made must cost time, never a healthy event. It only slows the reconnects
(``fruitless`` connections back off like failed connects), and it starts the
count of refusals in a row again. "Not authorized" and "quota exceeded" in a
DISCONNECT are such ends: they concern the connection (revoked credentials,
throttling), not one message.

"Quota exceeded" in a PUBACK is a temporary limit, not a verdict: the message
stays in the outbox, the publisher ends the connection and sends it again on
a later one, after a backoff that grows while the broker keeps saying so.

MQTT 3.1.1 has no reason codes: a 3.1.1 broker that closes the connection on
an oversize message looks exactly like a bad link, so that message is retried
until ``mqtt.max_message_bytes`` is set below the broker's limit (the
publisher then dead-letters what is larger before sending it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from tidegate.backoff import ReconnectSection
from tidegate.mqtt.wire import Reason
from tidegate.wording import count

REFUSALS_BEFORE_POISON = 3
"""Refusing DISCONNECTs in a row, with the same message first in flight, that make it poison."""

REFUSING_DISCONNECTS = frozenset(
    {
        0x90,  # Topic name invalid
        0x95,  # Packet too large
        0x99,  # Payload format invalid
        0x9A,  # Retain not supported
        0x9B,  # QoS not supported
    }
)
"""DISCONNECT reason codes that refuse a message; every other one is a lost connection.

Only codes about a message's own content: "not authorized" (0x87) and "quota
exceeded" (0x97) usually mean revoked credentials or throttling, and would
otherwise dead-letter a healthy message that happened to be first in flight.
"""

QUOTA_EXCEEDED = 0x97
"""In a PUBACK: the broker takes nothing more for now; the message is sent again later."""

HINT_EVERY = 10
"""Fruitless connections in a row between two hints about a silent refusal."""


def defers(reason: Reason) -> bool:
    """A PUBACK reason that means "not now" rather than "never"."""
    return reason.value == QUOTA_EXCEEDED


class InFlight(Protocol):
    """What the tracker needs to know of a message in flight."""

    topic: str
    ids: list[int]
    size: int


@dataclass(slots=True)
class ConnectionRecord:
    """What happened on one connection, for what comes after it (``RefusalTracker.after``)."""

    progress: bool = False
    """A PUBACK arrived."""
    first_unacked: InFlight | None = None
    """The oldest message in flight when it ended."""
    deferred: int = 0
    """Messages the broker answered "quota exceeded"."""
    on_purpose: bool = False
    """Ended by the gateway itself: back to the first broker, or a new login."""


@dataclass(frozen=True, slots=True)
class Poison:
    """Outbox row ids to dead-letter, and why."""

    ids: list[int]
    reason: str


class RefusalTracker:
    """Follows connections' ends; says which message, if any, the broker refuses."""

    def __init__(self) -> None:
        self.fruitless = 0
        """Connections in a row that ended with messages in flight and none acknowledged."""
        self._refusal: Reason | None = None
        """The refusing DISCONNECT that ended the current connection, if one did."""
        self._suspect = -1
        """First row id of the message the last refusals were taken to be about."""
        self._refusals = 0
        self.over_quota = 0
        """Connections in a row ended because the broker's quota was exceeded."""

    def disconnected(self, from_broker: bool, reason: Reason) -> None:
        """The connection ended: by a DISCONNECT packet from the broker, or lost."""
        if from_broker and reason.value in REFUSING_DISCONNECTS:
            self._refusal = reason

    def connection_ended(
        self, progress: bool, first: InFlight | None, *, over_quota: bool = False
    ) -> Poison | None:
        """After a connection: ``progress`` if any PUBACK came, ``first`` unacked message.

        ``over_quota``: the publisher ended it on a PUBACK "quota exceeded".
        """
        refusal, self._refusal = self._refusal, None
        self.fruitless = 0 if progress or first is None else self.fruitless + 1
        self.over_quota = self.over_quota + 1 if over_quota else 0
        if refusal is None or first is None:
            # Lost, not refused: says nothing about any message, and the refusals
            # (if any) before it were not "in a row".
            self._refusals, self._suspect = 0, -1
            return None
        first_id = first.ids[0]
        self._refusals = self._refusals + 1 if first_id == self._suspect else 1
        self._suspect = first_id
        if self._refusals < REFUSALS_BEFORE_POISON:
            return None
        self._refusals, self._suspect = 0, -1
        return Poison(
            first.ids,
            f"the broker refused this message ({first.size} B to {first.topic}) "
            f"{REFUSALS_BEFORE_POISON} times in a row: DISCONNECT {refusal}",
        )

    def backoff_attempt(self) -> int:
        """How many connections in a row to back off for; 0: reconnect at once."""
        return max(self.fruitless, self.over_quota)

    def quota_note(self, deferred: int) -> str:
        """A log line for the first connection of a run ended by the broker's quota, else ""."""
        if self.over_quota != 1:
            return ""
        return (
            f"the broker's quota is exceeded (PUBACK: Quota exceeded): "
            f"{count(deferred, 'message')} kept in the outbox, to be sent again after a "
            "backoff; not logged again while the broker keeps saying so"
        )

    def hint(self) -> str:
        """A line for the log every ``HINT_EVERY`` fruitless connections in a row."""
        if self.fruitless == 0 or self.fruitless % HINT_EVERY:
            return ""
        return (
            f"; {self.fruitless} connections in a row lost before any acknowledgement "
            "(a bad link, or a broker that refuses a message without saying so: with "
            "MQTT 3.1.1, set mqtt.max_message_bytes below the broker's message limit)"
        )

    def after(
        self, record: ConnectionRecord, backoff: ReconnectSection, last_error: str | None
    ) -> AfterConnection:
        """A connection ended: how long to wait before the next, what to log, and what
        is poison.

        Connections that end with messages in flight and none acknowledged, or on the
        broker's quota, back off like failed connects.
        """
        deferred = record.deferred
        over_quota = deferred > 0
        poison = self.connection_ended(record.progress, record.first_unacked, over_quota=over_quota)
        attempt = self.backoff_attempt()
        # One step longer than a failed connect's wait: this connection cost a round of sends.
        delay = backoff.delay(attempt + 1) if attempt else 0.0
        if over_quota:
            return AfterConnection(delay, self.quota_note(deferred), poison, QUOTA_ERROR)
        return AfterConnection(
            delay, f"broker connection lost ({last_error}){self.hint()}", poison, last_error
        )


QUOTA_ERROR = "the broker's quota is exceeded (PUBACK: Quota exceeded)"


class AfterConnection(NamedTuple):
    delay: float
    note: str
    """What to log (empty: nothing)."""
    poison: Poison | None
    last_error: str | None
