"""Time-ordered unique event ids (UUIDv7, RFC 9562).

A 48-bit Unix millisecond timestamp, then a 12-bit counter that keeps ids
strictly increasing within one millisecond (and across a wall clock that steps
back), then 62 random bits. Sorting the strings sorts by creation.
"""

from __future__ import annotations

import random
import time

_rng = random.SystemRandom()
_fast_rng = random.Random(_rng.getrandbits(64))
_last_ms = 0
_counter = 0


def uuid7(now_ms: int | None = None) -> str:
    """Return a new UUIDv7 string, later than every id this process made before."""
    global _last_ms, _counter  # noqa: PLW0603 - process-wide monotonic state is the point
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if ms > _last_ms:
        _last_ms = ms
        _counter = _fast_rng.getrandbits(8)  # leave headroom for the counter in rand_a
    else:
        _counter += 1
        if _counter > 0xFFF:
            # Counter exhausted in this millisecond: borrow the next millisecond.
            _last_ms += 1
            _counter = 0
    value = (
        (_last_ms << 80) | (0x7 << 76) | (_counter << 64) | (0b10 << 62) | _fast_rng.getrandbits(62)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
