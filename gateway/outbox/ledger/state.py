"""What the ledger holds (``tidegate.outbox.ledger.file`` keeps it in its file), as JSON.

Every field is checked when read: a slot whose JSON says anything else than what
was written is not valid (the other slot is used, or the ledger is damaged).
Fields added after the first format are optional when read (an older ledger
simply does not know them yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_UNDELETED_RANGES = 64
"""Delivered-but-not-deleted id ranges the ledger keeps across a restart."""
MAX_HOLES = 128
"""Per class, the deleted-id ranges above the lowest undelivered id the ledger keeps
(beyond that the loss count after a cut log becomes a lower bound)."""


@dataclass(slots=True)
class LedgerState:
    reserved: dict[str, int] = field(default_factory=dict)
    """Per source: no seq above this was ever used (durable)."""
    committed: dict[str, int] = field(default_factory=dict)
    """Per source: the last seq committed to the outbox."""
    accepted: int = 0
    """Events committed, in total, over the outbox's whole life (across recreations)."""
    depth: int = 0
    """Undelivered events after the last commit."""
    counters: dict[str, int] = field(default_factory=dict)
    """The outbox's persistent counters after the last commit."""
    memory_noted: int = 0
    """Events dropped from memory while commits failed, in total."""
    memory_applied: int = 0
    """Of those, how many the outbox file has counted (the rest are pending)."""
    undeleted: list[tuple[int, int]] = field(default_factory=list)
    """Row id ranges delivered to the broker whose delete has not succeeded yet."""
    clean: bool = True
    boot: str = ""
    outbox_id: int = 0
    """The random id stored in the outbox file this ledger describes (0: not known yet)."""
    undelivered: Undelivered | None = None
    """Which rows were undelivered after the last commit (None: not known, an older ledger)."""

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "reserved": self.reserved,
                "committed": self.committed,
                "accepted": self.accepted,
                "depth": self.depth,
                "counters": self.counters,
                "memory_noted": self.memory_noted,
                "memory_applied": self.memory_applied,
                "undeleted": self.undeleted[:MAX_UNDELETED_RANGES],
                "clean": self.clean,
                "boot": self.boot,
                "outbox_id": self.outbox_id,
                "undelivered": None if self.undelivered is None else self.undelivered.to_doc(),
            }
        )

    @classmethod
    def from_json(cls, body: bytes) -> LedgerState:
        """Parse a slot body; ValueError if anything is not as written."""
        doc = orjson.loads(body)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        return cls(
            reserved=_int_map(doc["reserved"]),
            committed=_int_map(doc["committed"]),
            accepted=_int(doc["accepted"]),
            depth=_int(doc["depth"]),
            counters=_int_map(doc["counters"]),
            memory_noted=_int(doc["memory_noted"]),
            memory_applied=_int(doc["memory_applied"]),
            undeleted=[(_int(r[0]), _int(r[1])) for r in doc["undeleted"]],
            clean=bool(doc["clean"]),
            boot=str(doc["boot"]),
            # Absent from ledgers written before they existed: not known then.
            outbox_id=_int(doc.get("outbox_id", 0)),
            undelivered=Undelivered.from_doc(doc.get("undelivered")),
        )

    @property
    def has_history(self) -> bool:
        """Did the outbox this ledger describes ever accept anything?"""
        return self.accepted > 0 or bool(self.reserved)


@dataclass(slots=True)
class Undelivered:
    """The rows undelivered at the last commit, exactly, in a few numbers.

    Per priority class ``c``: every row of that class with an id at least
    ``low[c]`` and below ``next_id``, except the ids in ``holes[c]`` (ranges of
    ids deleted above ``low[c]``: a rejected event, an acknowledgement out of
    order). Rows are deleted from the oldest in the normal course (acks, drops,
    expiry, purges), so ``holes`` is nearly always empty. ``exact`` is False if
    some holes did not fit (``MAX_HOLES``): a count based on it is then a lower
    bound."""

    next_id: int
    low: list[int]
    holes: list[list[tuple[int, int]]]
    exact: bool = True

    def to_doc(self) -> dict[str, Any]:
        return {"next_id": self.next_id, "low": self.low, "holes": self.holes, "exact": self.exact}

    @classmethod
    def from_doc(cls, doc: Any) -> Undelivered | None:
        if doc is None:
            return None
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        low = [_int(v) for v in doc["low"]]
        holes = [[(_int(r[0]), _int(r[1])) for r in ranges] for ranges in doc["holes"]]
        if len(low) != len(holes):
            raise ValueError("classes do not match")
        return cls(_int(doc["next_id"]), low, holes, bool(doc["exact"]))


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


def _int_map(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError("not a map")
    return {str(k): _int(v) for k, v in value.items()}
