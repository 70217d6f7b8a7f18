"""The gateway's presence on a broker: the retained ``online`` on its status topic
when a connection is made (with the format's subscriptions and announcements), and
on a clean end the format's farewell, ``offline`` and a DISCONNECT. The Last Will
(``offline``, or the format's own: Sparkplug's NDEATH) covers the unclean end."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tidegate.mqtt.wire import WireClient
from tidegate.uplink.window import SendWindow


class Presence:
    """Birth and sign-off on one uplink's connections."""

    def __init__(self, status_topic: str, window: SendWindow) -> None:
        self.status_topic = status_topic
        self._window = window
        self._offline_mid: int | None = None
        self._offline_sent = asyncio.Event()

    def born(self, client: WireClient) -> None:
        """A connection is made: ``online`` (retained), then the format's subscriptions
        (before its announcements: Sparkplug's NCMD before its NBIRTH), then what it
        announced on earlier connections."""
        client.publish(self.status_topic, b"online", 1, True)
        self._window.listen(client)
        self._window.announce(client)

    def answered(self, mid: int) -> None:
        """A PUBACK for a message that is not the window's: perhaps the ``offline``."""
        if mid == self._offline_mid:
            self._offline_sent.set()

    async def sign_off(
        self, client: WireClient, disconnected: asyncio.Event, deadline: float
    ) -> None:
        """The format's farewell, ``offline`` (retained) and DISCONNECT, by ``deadline``
        (monotonic): half of what is left for the ``offline``'s PUBACK, the rest for the
        broker to close."""
        self._offline_sent.clear()
        self._window.farewell(client)  # the format's own (Sparkplug's DDEATHs and NDEATH)
        mid = client.publish(self.status_topic, b"offline", 1, True)
        if mid > 0:
            self._offline_mid = mid
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._offline_sent.wait(), max(0.05, (deadline - time.monotonic()) / 2)
                )
        client.disconnect()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(disconnected.wait(), max(0.05, deadline - time.monotonic()))
