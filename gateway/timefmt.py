"""RFC 3339 timestamps for the wire, fast enough for the hot path."""

from __future__ import annotations

import time

_cached_second = -1
_cached_prefix = ""


def rfc3339(t: float) -> str:
    """Format epoch seconds as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC)."""
    global _cached_second, _cached_prefix  # noqa: PLW0603 - one-entry cache on the hot path
    sec = int(t)
    if sec != _cached_second:
        _cached_second = sec
        _cached_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    micros = round((t - sec) * 1_000_000)
    if micros >= 1_000_000:  # rounding carried into the next second
        return rfc3339(sec + 1)
    return f"{_cached_prefix}.{micros:06d}Z"
