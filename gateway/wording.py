"""Counting in messages: "1 driver", "2 drivers", "1 dead letter", "1,500 events"."""

from __future__ import annotations


def noun(n: int, singular: str, plural: str | None = None) -> str:
    """The noun that agrees with ``n``; the plural is ``singular + "s"`` unless given."""
    if n == 1:
        return singular
    return plural if plural is not None else singular + "s"


def count(n: int, singular: str, plural: str | None = None, *, grouped: bool = False) -> str:
    """``n`` and its noun: ``count(1, "driver")`` is "1 driver"; ``grouped`` writes 1,500."""
    return f"{n:,} {noun(n, singular, plural)}" if grouped else f"{n} {noun(n, singular, plural)}"
