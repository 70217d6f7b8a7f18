"""TLS for broker connections (the publisher and the `mqtt` driver)."""

from __future__ import annotations

import ssl

from tidegate.errors import ConfigError
from tidegate.mqtt.connection import TlsSection


def tls_context(tls: TlsSection | None) -> ssl.SSLContext | None:
    """The TLS settings as an SSL context, read once: a missing or unreadable CA,
    certificate or key is a configuration error (exit 2), not a reason to restart
    forever. None when TLS is off."""
    if tls is None:
        return None
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, key)
        if path is not None:
            try:
                with open(path, "rb") as f:
                    f.read(1)
            except OSError as exc:
                raise ConfigError(
                    [f"mqtt.tls.{key}: cannot read {path}: {exc.strerror or exc}"]
                ) from None
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file and tls.key_file:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except OSError as exc:
        detail = exc.strerror or str(exc)
        name = getattr(exc, "filename", None) or "a TLS file"
        raise ConfigError([f"mqtt.tls: cannot use {name}: {detail}"]) from None
    except ssl.SSLError as exc:
        raise ConfigError([f"mqtt.tls: the CA, certificate or key is not usable: {exc}"]) from None
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
