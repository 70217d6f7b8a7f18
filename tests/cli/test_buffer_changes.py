"""``tidegate buffer replay|purge``: changing an outbox the real gateway wrote, stopped
and while it runs (the outbox is made as tests/cli/test_buffer_cli.py describes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.cli.buffer_support import (
    ALPHA,
    BETA,
    GATEWAY,
    REFUSED,
    integrity,
    ok,
    query,
    stats_json,
    tidegate_buffer,
)
from tests.support import (
    GatewayProcess,
    Subscriber,
    assert_contiguous,
    assert_same_ids_for_duplicates,
    wait_until,
)
from tidegate.outbox.integrity import checksum

# -- a stopped gateway's outbox: changing it --------------------------------------------------


def test_replay_moves_refused_events_back_with_their_ids(outbox_db: Path) -> None:
    refused_ids = [
        json.loads(p)["id"]
        for (p,) in query(outbox_db, "SELECT payload FROM dead_letters WHERE stage = 'publish'")
    ]
    nothing = tidegate_buffer("replay", "--db", str(outbox_db), "--reason", "no such*", "--yes")
    assert nothing.returncode == 0 and "no dead-lettered events" in nothing.stdout

    proc = tidegate_buffer("replay", "--db", str(outbox_db), "--yes")
    assert proc.returncode == 0, proc.stderr
    assert f"replayed {REFUSED} events" in proc.stdout
    assert "2 dead letters hold raw input" in proc.stderr
    replayed = query(
        outbox_db,
        "SELECT o.payload, r.topic, r.qos, r.retain, s.source FROM outbox_normal o "
        "JOIN routes r ON r.id = o.route_id JOIN sources s ON s.id = o.source_id "
        "WHERE s.source = 'refused'",
    )
    assert [json.loads(p)["id"] for p, *_ in replayed] == refused_ids
    # Replayed rows carry a checksum like the gateway's own (its commits' segments hold
    # one per event), so the gateway publishes them.
    crcs = query(outbox_db, "SELECT payload, crc FROM outbox_normal WHERE crc IS NOT NULL")
    assert len(crcs) == REFUSED
    assert all(checksum(p) == crc for p, crc in crcs)
    assert {tuple(rest) for _, *rest in replayed} == {
        (f"tidegate/{GATEWAY}/refused/n", 1, 0, "refused")
    }
    left = query(outbox_db, "SELECT stage FROM dead_letters")
    assert left == [("input",), ("input",)]
    assert integrity(outbox_db) == "ok"
    assert stats_json("--db", str(outbox_db))["depth"] == ALPHA + BETA + REFUSED


def test_destructive_commands_refuse_without_yes_when_not_on_a_terminal(outbox_db: Path) -> None:
    for args in (["purge", "--all"], ["replay"]):
        proc = tidegate_buffer(*args, "--db", str(outbox_db))
        assert proc.returncode == 2, proc.stderr
        assert "refusing without --yes" in proc.stderr
    s = stats_json("--db", str(outbox_db))
    assert s["depth"] == ALPHA + BETA
    assert s["dead_letters"]["count"] == REFUSED + 2


def answer_on_a_terminal(answer: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    """Run with a pseudo-terminal as stdin (so the command asks) and type ``answer``."""
    primary, secondary = os.openpty()
    try:
        os.write(primary, answer)
        return tidegate_buffer(*args, stdin=secondary)
    finally:
        os.close(primary)
        os.close(secondary)


def test_purge_asks_on_a_terminal_and_counts_what_it_removed(outbox_db: Path) -> None:
    declined = answer_on_a_terminal(b"n\n", "purge", "--outbox", "--db", str(outbox_db))
    assert declined.returncode == 1
    assert "permanently remove 500 undelivered events" in declined.stdout
    assert stats_json("--db", str(outbox_db))["depth"] == ALPHA + BETA

    accepted = answer_on_a_terminal(b"y\n", "purge", "--dead-letters", "--db", str(outbox_db))
    assert accepted.returncode == 0, accepted.stderr
    assert "purged 0 undelivered events and 7 dead letters" in accepted.stdout

    assert "purged 500 undelivered events" in ok("purge", "--all", "--yes", "--db", str(outbox_db))
    s = stats_json("--db", str(outbox_db))
    assert (s["depth"], s["dead_letters"]["count"]) == (0, 0)
    assert s["counters"] == {"purged_dead_letters": 7, "purged_outbox": ALPHA + BETA}
    assert {k: v["last_seq"] for k, v in s["by_source"].items()} == {
        "alpha": ALPHA,
        "beta": BETA,
        "refused": REFUSED,
    }
    assert "nothing to purge" in ok("purge", "--all", "--yes", "--db", str(outbox_db))
    assert integrity(outbox_db) == "ok"


# -- while the gateway runs -----------------------------------------------------------------


def test_stats_peek_replay_purge_while_the_gateway_delivers(
    running: tuple[GatewayProcess, Subscriber], outbox_db: Path
) -> None:
    gw, sub = running
    refused_ids = {
        json.loads(p)["id"]
        for (p,) in query(outbox_db, "SELECT payload FROM dead_letters WHERE stage = 'publish'")
    }
    # The backlog goes first, then live events follow.
    wait_until(lambda: sub.count() >= ALPHA + BETA + 100, 30, "the backlog and live events")

    s = stats_json("--db", str(outbox_db))
    assert s["dead_letters"]["count"] == REFUSED + 2
    assert s["by_source"]["alpha"]["last_seq"] > ALPHA
    peeked = ok("peek", "--db", str(outbox_db), "--dead-letters", "--jsonl").splitlines()
    assert len(peeked) == REFUSED + 2

    before = sub.count()
    replay = tidegate_buffer("replay", "--db", str(outbox_db), "--yes")
    assert replay.returncode == 0, replay.stderr
    assert f"replayed {REFUSED} events" in replay.stdout

    def replayed_arrived() -> bool:
        return {e["id"] for e in sub.events() if e["source"] == "refused"} == refused_ids

    wait_until(replayed_arrived, 20, "the replayed events at the subscriber, with their ids")
    assert "purged 0 undelivered events and 2 dead letters" in ok(
        "purge", "--dead-letters", "--yes", "--db", str(outbox_db)
    )
    # The gateway was never blocked: it keeps delivering live events.
    wait_until(lambda: sub.count() >= before + 200, 20, "live events after replay and purge")
    assert gw.process is not None and gw.process.poll() is None, gw.output()
    gw.signal(signal.SIGTERM)
    assert gw.wait(10) == 0, gw.output()

    events = sub.events()
    assert_contiguous(events)
    assert_same_ids_for_duplicates(events)
    assert integrity(outbox_db) == "ok"
    after = stats_json("--db", str(outbox_db))
    assert after["dead_letters"]["count"] == 0
    assert after["counters"]["purged_dead_letters"] == 2
