"""Figures in messages: counting ("1 driver", "2 drivers", "1,500 events"), spans of
time ("2 h 05 min") and sizes ("1.5 MB"), said the same by `status` and `top`."""

from __future__ import annotations


def noun(n: int, singular: str, plural: str | None = None) -> str:
    """The noun that agrees with ``n``; the plural is ``singular + "s"`` unless given."""
    if n == 1:
        return singular
    return plural if plural is not None else singular + "s"


def count(n: int, singular: str, plural: str | None = None, *, grouped: bool = False) -> str:
    """``n`` and its noun: ``count(1, "driver")`` is "1 driver"; ``grouped`` writes 1,500."""
    return f"{n:,} {noun(n, singular, plural)}" if grouped else f"{n} {noun(n, singular, plural)}"


def duration(seconds: float | None) -> str:
    """A span for people: ``4.2 s``, ``95 s``, ``17 min``, ``2 h 05 min``, ``3 d 4 h``."""
    if seconds is None:
        return "never"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def size(n: float) -> str:
    """Bytes for people, in powers of 1000: ``512 B``, ``1.5 kB``, ``64.0 MB``, ``2.1 GB``."""
    value = float(n)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
