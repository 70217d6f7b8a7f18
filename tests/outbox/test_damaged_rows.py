"""Damaged stored rows never stop delivery and are never published as data (issue 9,
second review): a record whose header byte now says TEXT or INTEGER instead of BLOB,
and a damaged event sent back by `tidegate buffer replay`."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.outbox.stored import unpack_segments
from tests.outbox.support import buffer_cli, item
from tidegate.outbox.integrity import CHECKSUM_MISMATCH, DAMAGED, UNKNOWN_ROUTE, WRONG_TYPE
from tidegate.outbox.store import Outbox


def buffer(*args: str) -> subprocess.CompletedProcess[str]:
    """`tidegate buffer ...` as a user runs it."""
    done = buffer_cli(*args)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def stored_outbox(path: Path, n: int = 3) -> list[bytes]:
    """A stopped gateway's outbox holding ``n`` undelivered events as rows (a segment
    unpacked: the events a test damages by SQL or in the file's bytes); their payloads."""
    box = Outbox(path, "gw")
    box.open()
    box.put([item("alpha", i) for i in range(n)])
    payloads = [r.payload for r in box.take(100)]
    unpack_segments(box.db)
    box.close()
    return payloads


def rewrite(path: Path, sql: str) -> None:
    """Change a stored value's type as a flipped serial-type byte in its record header
    does (SQLite's quick_check does not look at values: the file still checks "ok")."""
    db = sqlite3.connect(path)
    try:
        db.execute(sql)
        db.commit()
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        db.close()


TYPE_DAMAGE = {
    "payload text, not UTF-8": "UPDATE outbox_normal SET payload = CAST(X'ff7b22' AS TEXT) "
    "WHERE id = 1",
    "payload text, UTF-8": "UPDATE outbox_normal SET payload = CAST(payload AS TEXT) WHERE id = 1",
    "payload integer": "UPDATE outbox_normal SET payload = 12345 WHERE id = 1",
    "crc text": "UPDATE outbox_normal SET crc = CAST(X'ff00' AS TEXT) WHERE id = 1",
    "crc real": "UPDATE outbox_normal SET crc = crc + 0.5 WHERE id = 1",
    "route text": "UPDATE outbox_normal SET route_id = 'r' || route_id WHERE id = 1",
}
"""Each changes the first stored event (id 1)."""


@pytest.mark.parametrize("how", TYPE_DAMAGE)
def test_a_value_of_the_wrong_type_is_dead_lettered_and_delivery_goes_on(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "o.db"
    payloads = stored_outbox(db)
    rewrite(db, TYPE_DAMAGE[how])
    # peek and export read it as it is (the payload as bytes), whatever its type.
    exported = buffer("export", "-f", "jsonl", "--db", str(db))
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 3
    assert buffer("peek", "--db", str(db)).returncode == 0

    box = Outbox(db, "gw")
    box.open()
    with caplog.at_level(logging.ERROR):
        first = box.take(10)
        second = box.take(10)  # and every take after: delivery goes on
    assert [r.payload for r in first] == payloads[1:]
    assert [r.payload for r in second] == payloads[1:]
    assert box.stats.drops[DAMAGED] == 1
    assert box.stats.depth == 2 and box.stats.dead_letters == 1
    (letter,) = box.db.execute("SELECT stage, reason, typeof(payload) FROM dead_letters")
    assert letter == ("outbox", WRONG_TYPE, "blob")
    assert [r.getMessage() for r in caplog.records] == [
        f"1 stored event failed a check ({WRONG_TYPE}): moved to dead letters"
    ]
    box.close()
    # The raw bytes are kept, and the dead letter reads like any other.
    peek = buffer("peek", "--dead-letters", "--jsonl", "--db", str(db))
    assert json.loads(peek.stdout)["reason"] == WRONG_TYPE


def damage_bytes(db: Path, payload: bytes) -> bytes:
    """Rewrite a stored payload's bytes in the file itself, its CRC left as stored."""
    data = bytearray(db.read_bytes())
    at = data.find(payload)
    assert at > 0
    damaged = payload.replace(b'"value":1', b'"value":9')
    assert damaged != payload and len(damaged) == len(payload)
    data[at : at + len(payload)] = damaged
    db.write_bytes(bytes(data))
    return damaged


def dead_letters(db: Path) -> list[dict[str, Any]]:
    done = buffer("export", "-f", "jsonl", "--dead-letters", "--db", str(db))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_replay_never_publishes_a_damaged_payload(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    payloads = stored_outbox(db)
    damage_bytes(db, payloads[1])
    box = Outbox(db, "gw")
    box.open()
    assert [r.payload for r in box.take(10)] == [payloads[0], payloads[2]]
    assert box.stats.drops[DAMAGED] == 1
    box.close()

    # By default a replay leaves the damaged event where it is, and says so.
    default = buffer("replay", "--yes", "--db", str(db))
    assert default.returncode == 0, default.stderr
    assert "1 dead letter is an event the outbox found damaged" in default.stdout
    assert CHECKSUM_MISMATCH in default.stdout and "--reason 'checksum*'" in default.stdout
    assert "no dead-lettered events to replay" in default.stdout
    assert [d["reason"] for d in dead_letters(db)] == [CHECKSUM_MISMATCH]
    # `*` matches every reason but does not name this one.
    assert (
        "no dead-lettered events to replay"
        in buffer("replay", "--yes", "--reason", "*", "--db", str(db)).stdout
    )

    # Named, it is replayed with the CRC it was stored with: the gateway sends it back.
    named = buffer("replay", "--yes", "--reason", "checksum*", "--db", str(db))
    assert named.returncode == 0, named.stderr
    assert "replayed 1 event into" in named.stdout
    assert "1 of them fails the checksum it was stored with" in named.stdout
    box = Outbox(db, "gw")
    box.open()
    assert [r.payload for r in box.take(10)] == [payloads[0], payloads[2]]
    assert box.stats.drops[DAMAGED] == 2
    box.close()
    (letter,) = dead_letters(db)
    assert letter["reason"] == CHECKSUM_MISMATCH
    assert letter["payload"]["value"] == 9  # the damaged bytes, kept as found


def test_a_row_with_an_unknown_route_is_not_replayable(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    payloads = stored_outbox(db, 2)
    rewrite(db, "UPDATE outbox_normal SET route_id = 999 WHERE id = 1")
    box = Outbox(db, "gw")
    box.open()
    assert [r.payload for r in box.take(10)] == payloads[1:]
    box.close()
    (letter,) = dead_letters(db)
    assert (letter["reason"], letter["topic"]) == (UNKNOWN_ROUTE, None)  # not "" (no topic)
    named = buffer("replay", "--yes", "--reason", "unknown*", "--db", str(db))
    assert named.returncode == 0, named.stderr
    assert "1 dead letter holds raw input or no topic" in named.stderr
    assert "no dead-lettered events to replay" in named.stdout
    raw = base64.b64encode(payloads[0]).decode()
    assert letter["payload"] == json.loads(payloads[0]) or letter["payload"] == raw
