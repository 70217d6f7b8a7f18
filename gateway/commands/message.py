"""A command as it arrives: parsed, its signature and time checked; and its result.

The signature is what ``tidegate cmd send`` makes and a cloud service can make in a few
lines: HMAC-SHA256, keyed with the key's text, over ``NAME + "\\n" + canonical JSON of
the message without "sig"`` (keys sorted, no spaces, UTF-8), in hex.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tidegate.errors import TidegateError

MAX_ID = 128
MAX_PAYLOAD = 256 * 1024
"""A command larger than this is refused unread (a rules file fits many times)."""

RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
MESSAGE_EXPIRY = 0x02


_ID = re.compile(rf"[A-Za-z0-9_.:-]{{1,{MAX_ID}}}")
_HEX = re.compile(r"[0-9a-fA-F]{1,128}")


def _publishable(topic: str) -> bool:
    """A topic a result may be published to: not empty, no wildcard, no NUL."""
    return bool(topic) and not any(c in topic for c in "+#\x00") and len(topic) < 65_536


class CommandRefused(TidegateError):
    """A command refused before it ran; ``reason`` is the short code results carry."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Command:
    """One command, parsed."""

    name: str
    doc: dict[str, Any]
    """The message as sent (for the signature and the audit)."""
    id: str | None
    args: dict[str, Any] = field(default_factory=dict)
    ts: float | None = None
    deadline: float | None = None
    """Epoch seconds: not to be run after."""
    sig: str | None = None
    response_topic: str | None = None
    correlation: bytes | None = None
    expires_monotonic: float | None = None
    """From the MQTT 5 Message Expiry Interval: the monotonic time it runs out."""


def canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(key: str, name: str, doc: Mapping[str, Any]) -> str:
    """The hex HMAC-SHA256 of a command (``doc`` without its ``sig``)."""
    unsigned = {k: v for k, v in doc.items() if k != "sig"}
    signed = name.encode() + b"\n" + canonical(unsigned)
    return hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()


def _number(doc: Mapping[str, Any], key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CommandRefused(f"`{key}` must be a number of epoch seconds", reason="bad_request")
    return float(value)


def parse(
    name: str, payload: bytes, properties: Mapping[int, object], received_monotonic: float
) -> Command:
    """The command in ``payload``; a message that is not one raises ``CommandRefused``
    (``bad_request``) carrying what could be read of its reply address."""
    response = properties.get(RESPONSE_TOPIC)
    if isinstance(response, str) and not _publishable(response):
        response = None  # answered on <topic>/result/<id> instead: never an invalid topic
    correlation = properties.get(CORRELATION_DATA)
    expiry = properties.get(MESSAGE_EXPIRY)
    empty = Command(
        name,
        {},
        None,
        response_topic=response if isinstance(response, str) else None,
        correlation=correlation if isinstance(correlation, bytes) else None,
        expires_monotonic=received_monotonic + expiry if isinstance(expiry, int) else None,
    )
    if len(payload) > MAX_PAYLOAD:
        raise BadCommand(empty, f"the command is larger than {MAX_PAYLOAD} bytes")
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCommand(empty, f"the command is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadCommand(empty, "the command must be a JSON object")
    raw_id = doc.get("id")
    ident = raw_id if isinstance(raw_id, str) and _ID.fullmatch(raw_id) else None
    found = replace(empty, doc=doc, id=ident)
    if ident is None:
        raise BadCommand(
            found,
            f"`id` must be 1 to {MAX_ID} letters, digits, '-', '_', '.' or ':' "
            "(it is a level of the result's topic)",
        )
    args = doc.get("args", {})
    if not isinstance(args, dict):
        raise BadCommand(found, "`args` must be a JSON object")
    sig = doc.get("sig")
    if sig is not None and not (isinstance(sig, str) and _HEX.fullmatch(sig)):
        raise BadCommand(found, "`sig` must be a hex string")
    try:
        ts, deadline = _number(doc, "ts"), _number(doc, "deadline")
    except CommandRefused as exc:
        raise BadCommand(found, str(exc)) from None
    return replace(found, args=args, ts=ts, deadline=deadline, sig=sig)


class BadCommand(CommandRefused):
    """A message that is not a well-formed command: ``bad_request``, with what was read."""

    def __init__(self, command: Command, message: str) -> None:
        super().__init__(message, reason="bad_request")
        self.command = command


def check_signature(command: Command, key: str, now: float, max_skew: float) -> None:
    """Refuse (``not_authorised``) a command whose signature or time does not hold."""
    if command.sig is None:
        raise CommandRefused("the command must be signed (`sig`)", reason="not_authorised")
    if not hmac.compare_digest(command.sig, signature(key, command.name, command.doc)):
        raise CommandRefused("the signature does not match", reason="not_authorised")
    if command.ts is None:
        raise CommandRefused("a signed command needs `ts`", reason="not_authorised")
    if abs(now - command.ts) > max_skew:
        raise CommandRefused(
            f"`ts` is {now - command.ts:+.0f} s from the gateway's clock "
            f"(at most {max_skew:.0f} s): a replay, or a clock to set",
            reason="not_authorised",
        )


def result_doc(command: Command, status: str, **fields: Any) -> dict[str, Any]:
    """A result as published: ``id``, ``command``, ``status`` and the fields given."""
    doc: dict[str, Any] = {"id": command.id, "command": command.name, "status": status}
    doc.update({k: v for k, v in fields.items() if v is not None})
    return doc
