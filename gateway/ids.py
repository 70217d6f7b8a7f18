"""Time-ordered unique event ids (UUIDv7, RFC 9562).

A 48-bit Unix millisecond timestamp, the version nibble 7, a 12-bit counter
that keeps ids strictly increasing within one millisecond (and across a wall
clock that steps back), the variant bits, then 62 random bits. Sorting the
strings sorts by creation.
"""

from __future__ import annotations

import random
import time

_fast_rng = random.Random(random.SystemRandom().getrandbits(64))
_getrandbits = _fast_rng.getrandbits
_last_ms = -1
_counter = 0
_prefix = ""  # the text of the timestamp part for _last_ms


def uuid7(now_ms: int | None = None) -> str:
    """Return a new UUIDv7 string, later than every id this process made before."""
    global _last_ms, _counter, _prefix  # noqa: PLW0603 - process-wide monotonic state is the point
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if ms > _last_ms:
        _last_ms = ms
        _counter = _getrandbits(8)  # a random start, with headroom to count up
        _prefix = f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"
    else:
        _counter += 1
        if _counter > 0xFFF:
            # Counter exhausted in this millisecond: borrow the next millisecond.
            _last_ms += 1
            _counter = 0
            _prefix = f"{_last_ms >> 16:08x}-{_last_ms & 0xFFFF:04x}-7"
    # The variant bits (10) on top of 62 random ones, written as one hex number and cut
    # in two: the cheapest formatting measured (~0.8 µs an id, from ~2).
    tail = f"{_getrandbits(62) | _VARIANT:016x}"
    return f"{_prefix}{_counter:03x}-{tail[:4]}-{tail[4:]}"


_VARIANT = 1 << 63
