"""What every message format provides (``tidegate.uplink.formats``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from tidegate.errors import PublishError
from tidegate.uplink.formats.offers import CommandOffer

if TYPE_CHECKING:
    from tidegate.commands.native import NativeCommand


class FormatError(PublishError):
    """A stored event the format cannot write (it goes to the dead letters)."""


class FormatContext(NamedTuple):
    """What a format may need to know of its uplink."""

    status_topic: str
    """Where the gateway says ``online`` and ``offline`` (retained; the Last Will)."""
    discovery_prefix: str = "homeassistant"
    gateway: str = "tidegate"
    """The gateway's id (``gateway.id``): Sparkplug's edge node."""
    sparkplug_group: str = "tidegate"
    """``mqtt.sparkplug_group``: the Sparkplug B group id."""
    discovery_forget_after: float | None = None
    """``mqtt.discovery_forget_after``: seconds a signal may go unseen before Home
    Assistant is told to remove its entities; None: never."""
    commands: tuple[CommandOffer, ...] = ()
    """The commands the uplink takes (``commands.allow``), for formats that offer them
    in their platform's own way (Home Assistant's switches, numbers and buttons)."""


class Announcement(NamedTuple):
    """A message a format sends beside the events (a discovery config: retained)."""

    topic: str
    payload: bytes
    retain: bool = True


class Format:
    """Rewrites stored events (tidegate's JSON objects) into one format's messages."""

    def __init__(self, context: FormatContext) -> None:
        self.context = context

    name: ClassVar[str]
    reshapes: ClassVar[bool] = True
    """False where ``event`` returns the stored bytes as they are (no per-event work)."""
    always_joined: ClassVar[bool] = False
    """True where a message of one event is still written by ``join`` (a JSON array)."""

    def event(self, stored: bytes) -> bytes:
        """One stored event as this format writes it; FormatError if it cannot."""
        return stored

    retopics: ClassVar[bool] = False
    """True where ``topic`` puts events on topics of the format's own."""

    def topic(self, routed: str, stored: bytes) -> str:
        """The topic the ``stored`` event, routed to ``routed``, is sent on."""
        return routed

    def topic_for(self, routed: str, stored: bytes) -> str:
        """The topic the stored event ``stored``, routed to ``routed``, is sent on; a
        FormatError refuses the event (a preset's topic rules)."""
        return self.topic(routed, stored)

    replays: ClassVar[bool] = False
    """True where an event sent again from the store is written differently (``replayed``)."""

    def replayed(self, stored: bytes) -> bytes:
        """``event`` for an event accepted before the current connection was made (a
        store-and-forward replay after an outage, or what was in flight at a drop)."""
        return self.event(stored)

    def join(self, events: Sequence[bytes]) -> bytes:
        """The payload of a message carrying ``events`` (each already from ``event``)."""
        raise NotImplementedError

    def message(self, events: Sequence[bytes], *, batched: bool) -> bytes:
        """The payload of a message of ``events``: with one event per message
        (``batched`` False), the event as it is, unless ``always_joined``."""
        if not batched and not self.always_joined:
            return events[0]
        return self.join(events)

    def content_type(self, batched: bool) -> str | None:
        """The MQTT 5 Content Type its messages carry (None: no property, no bytes)."""
        return None

    describes: ClassVar[bool] = False
    """True where each message carries properties of its own (``message_properties``)."""

    def message_properties(self, events: Sequence[bytes]) -> bytes:
        """MQTT 5 properties of the message of ``events`` (``packets.user_property``...)."""
        return b""

    announces: ClassVar[bool] = False
    """True where the format sends ``Announcement``s beside the events."""

    def announce(self, stored: bytes, topic: str) -> list[Announcement]:
        """What to send before this event, on ``topic``, goes out (empty once sent)."""
        return []

    supersedes: ClassVar[bool] = False
    """True where an announcement replaces an unsent earlier one on its topic (a
    Sparkplug DBIRTH that declares one metric more): only the last is sent, in the
    first one's place."""

    def reannounce(self) -> list[Announcement]:
        """Everything announced so far: sent again on every new connection."""
        return []

    def listens(self) -> list[str]:
        """Topic filters whose messages the format hears (``heard``) on each connection."""
        return []

    def heard(self, topic: str, payload: bytes) -> bool:
        """A message on one of ``listens``: whether it asks for ``reannounce`` now."""
        return False

    own_command_topic: bool = True
    """Whether the uplink also takes commands on its own ``<topic>/+`` (not where the
    platform ends a connection that subscribes elsewhere: Azure IoT Hub)."""

    def command_filters(self) -> list[str]:
        """Topic filters where the platform sends commands its own way (ThingsBoard's
        RPC, Sparkplug's NCMD/DCMD...), subscribed on each connection of an uplink that
        takes commands (``commands:``); each message goes to ``command_of``."""
        return []

    def command_of(self, topic: str, payload: bytes) -> NativeCommand | None:
        """A message on one of ``command_filters`` as a command; None: not one (ignored)."""
        return None

    # -- a format's own session on each connection (Sparkplug B's births and deaths) ------

    def will(self) -> Announcement | None:
        """The Last Will of the next connection (QoS 1), asked once per connection
        attempt, before it is made; None: the gateway's retained ``offline`` on the
        status topic. A connection has one will: a format's replaces ``offline``."""
        return None

    def farewell(self) -> list[Announcement]:
        """What to send on a clean end of a connection, before the gateway's ``offline``
        and the DISCONNECT (the will is not published then)."""
        return []

    sequences: ClassVar[bool] = False
    """True where every message is finished as it goes out (``sequence``)."""
    overhead: ClassVar[int] = 0
    """Bytes ``sequence`` may add to a message, kept free below the size limit."""

    def sequence(self, topic: str, payload: bytes) -> bytes:
        """The ``payload`` for ``topic`` as it goes out now: called (where ``sequences``)
        for every message and announcement in the order they are handed to the
        connection, so a format can number them (Sparkplug's ``seq``) or stamp them."""
        return payload
