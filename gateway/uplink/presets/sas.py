"""Azure IoT Hub's shared access signature (SAS) tokens, made from a device key.

A token is::

    SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>[&skn=<key name>]

with ``<resource>`` the URL-encoded ``<hub>/devices/<device id>``, ``<expiry>`` the
Unix time it stops being valid, and ``<signature>`` the URL-encoded base64 of the
HMAC-SHA256, keyed with the base64-decoded key, of ``"<resource>\\n<expiry>"`` (the
encoded resource, as Microsoft's SDKs sign it). The key is read once, at start, and
never shown: tokens and key are ``Secret``s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import quote

from tidegate.errors import SecretUnreadable
from tidegate.mqtt.credentials import Secret

RENEW_FROM = 0.8
"""A connection is renewed once this part of its token's lifetime has passed..."""
RENEW_GRACE = 0.05
"""... after waiting up to this part more (5 s at most) for nothing to be in flight."""


def sas_token(resource: str, key: bytes, expiry: int, key_name: str | None = None) -> Secret:
    """The SAS token for ``resource`` (not yet encoded), valid until ``expiry``."""
    encoded = quote(resource, safe="")
    digest = hmac.new(key, f"{encoded}\n{expiry}".encode(), hashlib.sha256).digest()
    signature = quote(base64.b64encode(digest).decode(), safe="")
    token = f"SharedAccessSignature sr={encoded}&sig={signature}&se={expiry}"
    if key_name is not None:
        token += f"&skn={quote(key_name, safe='')}"
    return Secret(token)


def decode_key(key: Secret, what: str) -> bytes:
    """The key's bytes; SecretUnreadable (without the key) when it is not base64."""
    try:
        decoded = base64.b64decode(key.reveal(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        raise SecretUnreadable(
            f"{what} is not a base64 key (copy the device's primary key as the portal or "
            "`az iot hub device-identity show` shows it)"
        ) from None
    return decoded


class SasLogin:
    """Makes a new token for each CONNECT, and says when to renew the connection."""

    def __init__(
        self,
        resource: str,
        key: Secret,
        *,
        key_name: str | None,
        lifetime: float,
        what: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resource = resource
        self._key = Secret(base64.b64encode(decode_key(key, what)).decode())
        self.key_name = key_name
        self.lifetime = lifetime
        self._clock = clock
        self.expires: int | None = None
        """The Unix time the last token made expires."""
        self.renewal: tuple[float, float] | None = None
        """For the last token made: when to renew its connection (monotonic), from and
        at the latest."""

    def token(self) -> Secret:
        """A fresh token, valid for ``lifetime`` from now (whole seconds, rounded down)."""
        made = time.monotonic()
        now = self._clock()
        expiry = int(now + self.lifetime)
        valid = max(0.0, expiry - now)
        start = made + RENEW_FROM * valid
        self.renewal = (start, start + min(5.0, RENEW_GRACE * valid))
        self.expires = expiry
        key = base64.b64decode(self._key.reveal())
        return sas_token(self.resource, key, expiry, self.key_name)

    def __repr__(self) -> str:
        return f"SasLogin({self.resource!r}, key=Secret('***'))"
