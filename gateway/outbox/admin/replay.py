"""``tidegate buffer replay``: dead-lettered events back into the outbox.

A replayed event keeps its payload as it was (same ``id`` and ``seq``, so the
cloud can deduplicate), its stored topic (QoS 1, no retain) and the CRC it
was stored with. The gateway checks that CRC before publishing, as for any
stored event: a payload damaged in the outbox goes back to the dead letters,
it is never published as data. Dead letters whose reason says the stored
event was damaged (``tidegate.outbox.integrity.DAMAGE_REASONS``) are left
where they are unless ``--reason`` names them (``names_damage``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlite_utils import Database

from tidegate.clock import RELEASE_EPOCH, current_boot_id
from tidegate.outbox import segment_store
from tidegate.outbox.admin.access import COUNTER_SQL, scalar, snapshot, write_transaction
from tidegate.outbox.admin.listing import DeadLetter, dead_letters
from tidegate.outbox.integrity import DAMAGE_REASONS, checksum, intact, names_damage
from tidegate.outbox.routing import route_topic, routed_to, stored_topic
from tidegate.outbox.schema import CLASS_TABLES, NEXT_ID

WRITE_CHUNK = 500
"""Rows replayed per write transaction: each holds the write lock for a few milliseconds."""


def replayable_event(letter: DeadLetter) -> dict[str, Any] | None:
    """The event a dead letter holds, or None if it holds none (raw input, no topic)."""
    if not letter.topic or letter.payload is None:
        return None  # "" is what an unknown route left before topics could be NULL
    try:
        doc = orjson.loads(letter.payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return None
    return doc


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    replayable: list[int]
    """Ids of the matching dead letters that hold events."""
    not_replayable: int
    """Matching dead letters that hold no event (raw input, no topic): left where they are."""
    damaged: dict[str, int] = field(default_factory=dict)
    """Per damage reason, the letters left where they are (``--reason`` did not name it)."""
    failing: int = 0
    """Of ``replayable``, how many fail their stored CRC (the gateway dead-letters them again)."""


def plan_replay(db: Database, reason_glob: str | None = None) -> ReplayPlan:
    replayable: list[int] = []
    not_replayable = failing = 0
    damaged: dict[str, int] = {}
    with snapshot(db):
        for letter in dead_letters(db, reason_glob=reason_glob):
            if letter.reason in DAMAGE_REASONS and not names_damage(reason_glob, letter.reason):
                damaged[letter.reason] = damaged.get(letter.reason, 0) + 1
            elif replayable_event(letter) is None:
                not_replayable += 1
            else:
                replayable.append(letter.id)
                crc = letter.crc
                if letter.payload is not None and not (
                    crc is None or (type(crc) is int and intact(letter.payload, crc))
                ):
                    failing += 1
    return ReplayPlan(replayable, not_replayable, damaged, failing)


def _id_of(db: Database, insert: str, select: str, params: Sequence[object]) -> int:
    """Insert-or-find a row in a small lookup table; the gateway does the same."""
    db.execute(insert, params)
    found = scalar(db, select, params)
    assert found is not None
    return int(found)


def _stored_crc(letter: DeadLetter) -> object:
    """The CRC the replayed row carries: the one the event was stored with. A letter
    without one (an event stored before checksums) gets one now, unless its reason
    says it was damaged: a fresh CRC would certify the damage."""
    if letter.crc is not None or letter.payload is None or letter.reason in DAMAGE_REASONS:
        return letter.crc
    return checksum(letter.payload)


def replay(db: Database, ids: Iterable[int]) -> int:
    """Move dead-lettered events back into ``outbox_normal``; returns how many moved.

    Dead letters that no longer exist or hold no event are skipped.
    """
    moved = 0
    pending = list(ids)
    boot = current_boot_id()
    for start in range(0, len(pending), WRITE_CHUNK):
        chunk = pending[start : start + WRITE_CHUNK]
        with write_transaction(db):
            # Above every id the gateway ever used (it keeps NEXT_ID current; rows and
            # segments), so the publisher, whose cursors only move forward, takes these
            # rows at once.
            top = max(
                segment_store.top_id(db.conn),
                *(
                    int(scalar(db, f"SELECT COALESCE(MAX(id), 0) FROM {table}"))  # noqa: S608 - constant names
                    for table in CLASS_TABLES
                ),
            )
            next_id = max(top + 1, int(scalar(db, COUNTER_SQL, (NEXT_ID,)) or 0))
            boot_id = _id_of(
                db,
                "INSERT OR IGNORE INTO boots (boot) VALUES (?)",
                "SELECT id FROM boots WHERE boot = ?",
                (boot,),
            )
            now = time.time()
            rows = []
            done = []
            marks = ",".join("?" * len(chunk))
            letters = db.execute(
                "SELECT id, at, stage, reason, source, topic, CAST(payload AS BLOB), "  # noqa: S608 - only placeholders
                f"IIF(typeof(crc) = 'text', CAST(crc AS BLOB), crc) FROM dead_letters "
                f"WHERE id IN ({marks}) ORDER BY id",
                chunk,
            ).fetchall()
            for row in letters:
                letter = DeadLetter(*row)
                event = replayable_event(letter)
                if event is None or letter.topic is None or letter.payload is None:
                    continue
                source = letter.source or str(event.get("source", "?"))
                seq = event.get("seq")
                db.execute(
                    # A source unknown to this file starts after the replayed seq, so new
                    # events of it never reuse a seq a replayed one carries.
                    "INSERT OR IGNORE INTO sources (source, last_seq) VALUES (?, ?)",
                    (source, seq if isinstance(seq, int) else 0),
                )
                source_id = int(scalar(db, "SELECT id FROM sources WHERE source = ?", (source,)))
                route_id = _id_of(
                    db,
                    "INSERT OR IGNORE INTO routes (topic, qos, retain) VALUES (?, 1, 0)",
                    "SELECT id FROM routes WHERE topic = ? AND qos = 1 AND retain = 0",
                    (_replayed_route(letter.topic),),
                )
                rows.append(
                    {
                        "id": next_id,
                        "source_id": source_id,
                        "route_id": route_id,
                        "accepted": now,
                        "synced": int(now >= RELEASE_EPOCH),
                        "boot_id": boot_id,
                        "payload": letter.payload,
                        "crc": _stored_crc(letter),
                    }
                )
                done.append(letter.id)
                next_id += 1
            if rows:
                db.table("outbox_normal").insert_all(rows)
                db.execute(
                    "INSERT INTO counters (name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)",
                    (NEXT_ID, next_id),
                )
                db.table("dead_letters").delete_where(f"id IN ({','.join('?' * len(done))})", done)
            moved += len(rows)
    return moved


def _replayed_route(stored: str) -> str:
    """A letter's route as a replay stores it: to the uplinks it went to, without its
    expiry (the operator asked for it to be sent, however late)."""
    sent = route_topic(stored)
    return stored_topic(sent, routed_to(sent) or ())
