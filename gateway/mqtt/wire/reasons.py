"""MQTT reason codes (MQTT 5, section 2.4) and the 3.1.1 CONNACK return codes."""

from __future__ import annotations

from typing import NamedTuple

NAMES = {
    0x00: "Success",
    0x04: "Disconnect with will message",
    0x10: "No matching subscribers",
    0x80: "Unspecified error",
    0x81: "Malformed packet",
    0x82: "Protocol error",
    0x83: "Implementation specific error",
    0x84: "Unsupported protocol version",
    0x85: "Client identifier not valid",
    0x86: "Bad user name or password",
    0x87: "Not authorized",
    0x88: "Server unavailable",
    0x89: "Server busy",
    0x8A: "Banned",
    0x8B: "Server shutting down",
    0x8C: "Bad authentication method",
    0x8D: "Keep alive timeout",
    0x8E: "Session taken over",
    0x90: "Topic name invalid",
    0x93: "Receive maximum exceeded",
    0x94: "Topic alias invalid",
    0x95: "Packet too large",
    0x96: "Message rate too high",
    0x97: "Quota exceeded",
    0x98: "Administrative action",
    0x99: "Payload format invalid",
    0x9A: "Retain not supported",
    0x9B: "QoS not supported",
    0x9C: "Use another server",
    0x9D: "Server moved",
    0x9F: "Connection rate exceeded",
}

CONNACK_311 = {
    0: 0x00,
    1: 0x84,  # unacceptable protocol version
    2: 0x85,  # identifier rejected
    3: 0x88,  # server unavailable
    4: 0x86,  # bad user name or password
    5: 0x87,  # not authorized
}
"""MQTT 3.1.1 CONNACK return codes, as the MQTT 5 reason code of the same meaning."""


class Reason(NamedTuple):
    """A reason code as the broker sent it; printed by its name."""

    value: int

    @property
    def is_failure(self) -> bool:
        return self.value >= 0x80

    def __str__(self) -> str:
        return NAMES.get(self.value, f"reason code 0x{self.value:02X}")


SUCCESS = Reason(0)
LOST = Reason(0x80)
"""A connection that ended without a DISCONNECT from the broker (closed, reset, timed out)."""
