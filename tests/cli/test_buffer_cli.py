"""``tidegate buffer`` against outbox files the real gateway wrote, stopped and running.

The outbox under test is made by real gateway processes: one publishing to a
broker whose ACL refuses one source's topic (the broker's PUBACK says "not
authorized", so the gateway dead-letters those events), then one without a
broker (a backlog of undelivered events, one source routed to the `high`
class). Two raw-input dead letters are added through the outbox's own API, as a
driver's rejected line would be.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    TIDEGATE,
    GatewayProcess,
    Subscriber,
    assert_contiguous,
    assert_same_ids_for_duplicates,
    wait_until,
    write_config,
)
from tidegate.demo.local_broker import LocalBroker
from tidegate.outbox.integrity import checksum
from tidegate.outbox.store import DeadInput, Outbox

BUFFER = [*TIDEGATE, "buffer"]
GATEWAY = "bt"
REFUSED = 5
ALPHA = 300
BETA = 200
RAW_INPUT = [b"\xff\x00garbage", b"T=21.4*XX"]
REFUSED_REASON = "broker refused the message: Not authorized"


def tidegate_buffer(
    *args: str, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BUFFER, *args], capture_output=True, text=True, timeout=60, stdin=stdin, check=False
    )


def ok(*args: str) -> str:
    proc = tidegate_buffer(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def query(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def dead_letter_count(db: Path) -> int:
    """0 until the gateway has created the file and its tables."""
    try:
        return int(query(db, "SELECT COUNT(*) FROM dead_letters")[0][0])
    except sqlite3.OperationalError:
        return 0


def integrity(db: Path) -> str:
    return str(query(db, "PRAGMA integrity_check")[0][0])


def gateway_config(path: Path, data_dir: Path, mqtt: str, drivers: str, rules: str = "") -> Path:
    return write_config(
        path,
        f"""
gateway: {{id: {GATEWAY}, data_dir: {data_dir}}}
{mqtt}
buffer: {{commit_interval: 20ms}}
drivers:
{drivers}
{rules}
""",
    )


def run_until(config: Path, log: Path, condition: Any, what: str) -> None:
    """Run the gateway until ``condition()`` holds, then stop it cleanly."""
    gw = GatewayProcess(config, log).start()
    try:
        wait_until(condition, 30, what)
    finally:
        code = gw.stop()
    assert code == 0, gw.output()


@pytest.fixture(scope="module")
def made_outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An outbox with dead letters (5 refused events, 2 raw inputs) and a 500-event backlog."""
    base = tmp_path_factory.mktemp("made")
    data = base / "data"
    db = data / "outbox.db"
    acl = base / "acl"
    acl.write_text(f"topic deny tidegate/{GATEWAY}/refused/#\ntopic readwrite #\n")
    with LocalBroker(base / "broker", extra_config=f"acl_file {acl}") as broker:
        refusing = gateway_config(
            base / "refusing.yaml",
            data,
            f"mqtt: {{host: {broker.host}, port: {broker.port}, reconnect_min: 100ms}}",
            "  - {name: refused, type: sim, signals: [{name: n, kind: counter, rate: 500, "
            f"count: {REFUSED}}}]}}",
        )
        run_until(
            refusing,
            base / "gw1.log",
            lambda: dead_letter_count(db) == REFUSED,
            "the broker's refusals to be dead-lettered",
        )
    offline = gateway_config(
        base / "offline.yaml",
        data,
        "",
        f"  - {{name: alpha, type: sim, signals: [{{name: n, kind: counter, rate: 5000, "
        f"count: {ALPHA}}}]}}\n"
        f"  - {{name: beta, type: sim, signals: [{{name: t, kind: sine, rate: 5000, "
        f"count: {BETA}, unit: C}}]}}",
        "rules:\n  - {name: urgent, match: {source: beta}, publish: {priority: high}}",
    )
    run_until(
        offline,
        base / "gw2.log",
        lambda: (
            dict(query(db, "SELECT source, last_seq FROM sources"))
            == {"refused": REFUSED, "alpha": ALPHA, "beta": BETA}
        ),
        "the backlog to be committed",
    )
    outbox = Outbox(db, GATEWAY)
    outbox.open()
    try:
        outbox.dead_letter_input(
            [DeadInput(time.time(), "input", "bad checksum", "serial0", raw) for raw in RAW_INPUT]
        )
    finally:
        outbox.close()
    return db


@pytest.fixture
def outbox_db(made_outbox: Path, tmp_path: Path) -> Path:
    """A private copy of the made outbox (a stopped gateway's data directory)."""
    target = tmp_path / "data"
    shutil.copytree(made_outbox.parent, target)
    return target / "outbox.db"


def stats_json(*where: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(ok("stats", "--json", *where))
    return result


# -- a stopped gateway's outbox ------------------------------------------------------------


def test_stats_counts_depth_sources_priorities_and_dead_letters(outbox_db: Path) -> None:
    s = stats_json("--db", str(outbox_db))
    assert s["depth"] == ALPHA + BETA
    (payload,) = query(outbox_db, "SELECT SUM(LENGTH(payload)) FROM outbox")[0]
    assert s["payload_bytes"] == payload
    assert s["file_bytes"]["db"] == outbox_db.stat().st_size
    assert s["by_priority"] == {
        "high": {"depth": BETA, "payload_bytes": s["by_priority"]["high"]["payload_bytes"]},
        "normal": {
            "depth": ALPHA,
            "payload_bytes": payload - s["by_priority"]["high"]["payload_bytes"],
        },
        "low": {"depth": 0, "payload_bytes": 0},
    }
    assert {k: (v["depth"], v["last_seq"]) for k, v in s["by_source"].items()} == {
        "alpha": (ALPHA, ALPHA),
        "beta": (BETA, BETA),
        "refused": (0, REFUSED),
    }
    assert 0 <= s["oldest_age_s"] < 600
    assert s["dead_letters"]["count"] == REFUSED + len(RAW_INPUT)
    assert s["dead_letters"]["by_reason"] == [
        {"stage": "publish", "reason": REFUSED_REASON, "count": REFUSED},
        {"stage": "input", "reason": "bad checksum", "count": len(RAW_INPUT)},
    ]
    assert "admin_generation" not in s["counters"]
    human = ok("stats", "--db", str(outbox_db))
    assert f"undelivered   {ALPHA + BETA} events" in human
    assert "high 200 · normal 300 · low 0" in human
    assert f"{REFUSED:>8}  publish: {REFUSED_REASON}" in human


def test_stats_finds_the_outbox_through_the_config(outbox_db: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        f"gateway: {{id: {GATEWAY}, data_dir: {outbox_db.parent}}}\n"
        "drivers: [{name: x, type: sim, signals: [{name: n, kind: counter, rate: 1}]}]\n",
    )
    via_config = stats_json("-c", str(config))
    assert via_config["depth"] == ALPHA + BETA
    assert via_config["path"] == str(outbox_db)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["stats", "--db", "/nonexistent/outbox.db"], 1, "no outbox at /nonexistent/outbox.db"),
        (["stats", "--db", "x.db", "-c", "y.yaml"], 2, "not both"),
        (["peek", "-c", "/nonexistent.yaml"], 2, "no such file"),
        (["purge", "--db", "x.db"], 2, "say what to purge"),
        (["export", "--db", "x.db"], 2, "--format"),
    ],
)
def test_usage_and_missing_files_are_one_line_errors(
    args: list[str], code: int, message: str
) -> None:
    proc = tidegate_buffer(*args)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_peek_shows_the_oldest_first_and_filters_by_source(outbox_db: Path) -> None:
    lines = ok("peek", "--db", str(outbox_db), "-n", "4", "--jsonl").splitlines()
    rows = [json.loads(line) for line in lines]
    expected = query(outbox_db, "SELECT id FROM outbox ORDER BY id LIMIT 4")
    assert [r["row"] for r in rows] == [i for (i,) in expected]
    alpha = [
        json.loads(line)
        for line in ok("peek", "--db", str(outbox_db), "--source", "al*", "--jsonl").splitlines()
    ]
    assert [(r["source"], r["payload"]["seq"]) for r in alpha] == [
        ("alpha", n) for n in range(1, 11)
    ]
    assert {r["priority"] for r in alpha} == {"normal"}
    assert alpha[0]["topic"] == f"tidegate/{GATEWAY}/alpha/n" and alpha[0]["qos"] == 1
    readable = ok("peek", "--db", str(outbox_db), "-n", "2", "--source", "beta")
    assert readable.count(" high ") == 2 and '"seq":2' in readable


def test_peek_dead_letters_show_reason_and_raw_input(outbox_db: Path) -> None:
    letters = [
        json.loads(line)
        for line in ok("peek", "--db", str(outbox_db), "--dead-letters", "--jsonl").splitlines()
    ]
    assert [(d["stage"], d["encoding"]) for d in letters] == [("publish", "json")] * REFUSED + [
        ("input", "base64"),
        ("input", "text"),
    ]
    assert letters[-1]["payload"] == RAW_INPUT[1].decode()
    assert letters[0]["payload"]["source"] == "refused"
    readable = ok("peek", "--db", str(outbox_db), "--dead-letters", "--source", "serial*")
    assert "input: bad checksum" in readable and "T=21.4*XX" in readable


def test_export_jsonl_and_csv_hold_every_event(outbox_db: Path, tmp_path: Path) -> None:
    stored = {
        row_id: json.loads(payload)
        for row_id, payload in query(outbox_db, "SELECT id, payload FROM outbox")
    }
    target = tmp_path / "out.jsonl"
    proc = tidegate_buffer("export", "--db", str(outbox_db), "-f", "jsonl", "-o", str(target))
    assert proc.returncode == 0, proc.stderr
    assert f"exported {ALPHA + BETA} events to {target}" in proc.stderr
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["row"] for r in exported] == sorted(stored)
    assert {r["row"]: r["payload"] for r in exported} == stored

    table = list(csv.DictReader(io.StringIO(ok("export", "--db", str(outbox_db), "-f", "csv"))))
    assert {int(r["row"]): json.loads(r["payload"]) for r in table} == stored
    assert {r["encoding"] for r in table} == {"json"}

    letters = list(
        csv.DictReader(
            io.StringIO(ok("export", "--db", str(outbox_db), "-f", "csv", "--dead-letters"))
        )
    )
    assert [r["reason"] for r in letters] == [REFUSED_REASON] * REFUSED + ["bad checksum"] * 2
    assert letters[-2]["encoding"] == "base64"


def test_export_into_a_closed_pipe_stops_quietly(outbox_db: Path) -> None:
    """``tidegate buffer export ... | head -1``: no traceback when the reader goes."""
    proc = subprocess.Popen(
        [*BUFFER, "export", "--db", str(outbox_db), "-f", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["row"] >= 1
    proc.stdout.close()  # the export (~100 kB) is larger than a pipe's buffer: it must notice
    errors = proc.stderr.read().decode()
    assert proc.wait(30) == 1
    assert "Traceback" not in errors and "Broken pipe" not in errors, errors


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
    # Replayed rows carry a checksum like the gateway's own, so the gateway publishes them.
    crcs = query(outbox_db, "SELECT payload, crc FROM outbox_normal WHERE crc IS NOT NULL")
    assert len(crcs) == ALPHA + REFUSED
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


@pytest.fixture
def running(
    outbox_db: Path, tmp_path: Path, broker: LocalBroker
) -> Iterator[tuple[GatewayProcess, Subscriber]]:
    """The made outbox's gateway, running again against a broker that accepts everything."""
    sub = Subscriber(broker.host, broker.port, f"tidegate/{GATEWAY}/#").start()
    config = gateway_config(
        tmp_path / "running.yaml",
        outbox_db.parent,
        f"mqtt: {{host: {broker.host}, port: {broker.port}, reconnect_min: 100ms}}",
        "  - {name: alpha, type: sim, signals: [{name: n, kind: counter, rate: 200}]}",
    )
    gw = GatewayProcess(config, tmp_path / "running.log").start()
    try:
        yield gw, sub
    finally:
        gw.kill()
        sub.stop()


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
