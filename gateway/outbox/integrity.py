"""Checksums of stored events: damage inside a payload is caught before publishing.

SQLite's own checks (``quick_check``) look at the file's structure, not at the
bytes of a record: 8 bytes overwritten inside a stored payload pass them, and
the damaged event would be published as if a device had sent it. Each stored
event therefore carries the CRC32 of its payload (``crc``, schema 3), computed
when it is committed and checked when it is taken for publishing; an event
that fails the check, whose row names a route that does not exist, or whose
values are not of their column's type, goes to the dead letters with the reason
and its CRC as stored — counted, and logged once per batch. A replay of such a
dead letter puts the stored CRC back, so damage is never published as data.
Rows stored before schema 3 have no checksum (NULL) and are published as they are;
the file records the first id that must have one (counter ``crc_from_id``), so a
NULL from a damaged header byte on a later row is damage, not an old row.
"""

from __future__ import annotations

import zlib

CHECKSUM_MISMATCH = "checksum mismatch (stored payload damaged)"
UNKNOWN_ROUTE = "unknown route (stored row damaged)"
CHECKSUM_MISSING = "checksum missing (stored row damaged)"
"""A row stored with a checksum (its id is at or above ``crc_from_id``) reads as NULL."""
WRONG_TYPE = "stored value of the wrong type (stored row damaged)"
"""A payload that is not bytes (or an id, route or checksum that is not an integer):
a damaged byte in the record's header changed what SQLite reads the value as."""
DAMAGE_REASONS = (CHECKSUM_MISMATCH, CHECKSUM_MISSING, UNKNOWN_ROUTE, WRONG_TYPE)
"""Dead-letter reasons that mean the stored event is damaged: ``tidegate buffer
replay`` leaves these letters alone unless ``--reason`` names them."""

DAMAGED = "damaged_rows"
"""Counter: stored events found damaged before publishing (moved to the dead letters)."""


def checksum(payload: bytes) -> int:
    """CRC32 as a signed 32-bit integer (SQLite stores it in 4 bytes, not 6)."""
    crc = zlib.crc32(payload)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def intact(payload: bytes, crc: int | None) -> bool:
    return crc is None or checksum(payload) == crc


def names_damage(pattern: str | None, reason: str) -> bool:
    """Whether a ``--reason`` glob names a damage reason explicitly: it starts with the
    reason's first word (``checksum*``, ``unknown route*``), so ``*`` never does."""
    return pattern is not None and pattern.startswith(reason.split(" ", 1)[0])
