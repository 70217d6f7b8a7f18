"""A command in a platform's own convention, as an uplink's message format read it:
ThingsBoard's RPC, Sparkplug B's NCMD/DCMD, Home Assistant's command topics, an IoT
hub's direct methods. The command layer takes it like any other (declared under
``allow``, its arguments checked, audited, a repeated id answered once), except that
it carries no signature: a command declared ``signed`` is refused when it arrives this
way (the broker's own access control is what stands behind these)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NativeReply = Callable[[str, dict[str, Any]], list[tuple[str, bytes]]]
"""``(status, fields)`` → the messages that answer it in the platform's way
(topic, payload); none for a status the platform has no word for (``accepted``)."""


@dataclass(frozen=True, slots=True)
class NativeCommand:
    convention: str
    """Whose convention: ``thingsboard``, ``sparkplug``, ``homeassistant``, ``azure``."""
    name: str
    """The command's name, as ``commands.allow`` declares it."""
    id: str | None
    """The platform's request id; None where it has none (each call is new)."""
    args: dict[str, Any] = field(default_factory=dict)
    reply: NativeReply = field(default=lambda status, fields: [])
    expires_in: float | None = None
    """Seconds the platform waits for the answer (an IoT hub's method timeout): a call
    still waiting then is refused, not run late for a caller who has given up."""
