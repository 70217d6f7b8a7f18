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
import subprocess
from pathlib import Path

import pytest

from tests.cli.buffer_support import (
    ALPHA,
    BETA,
    BUFFER,
    GATEWAY,
    RAW_INPUT,
    REFUSED,
    REFUSED_REASON,
    ok,
    stats_json,
    stored,
    tidegate_buffer,
)
from tests.support import write_config

# -- a stopped gateway's outbox: reading it ---------------------------------------------------


def test_stats_counts_depth_sources_priorities_and_dead_letters(outbox_db: Path) -> None:
    s = stats_json("--db", str(outbox_db))
    assert s["depth"] == ALPHA + BETA
    payload = sum(len(p) for _, _, p in stored(outbox_db))
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
        (["peek", "-c", "/nonexistent.yaml"], 2, "no such config file: /nonexistent.yaml"),
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
    assert [r["row"] for r in rows] == [i for i, _, _ in stored(outbox_db)[:4]]
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
    assert "topic" not in readable  # input a driver rejected never had one: no "topic None"


def test_export_jsonl_and_csv_hold_every_event(outbox_db: Path, tmp_path: Path) -> None:
    events = {row_id: json.loads(payload) for row_id, _, payload in stored(outbox_db)}
    target = tmp_path / "out.jsonl"
    proc = tidegate_buffer("export", "--db", str(outbox_db), "-f", "jsonl", "-o", str(target))
    assert proc.returncode == 0, proc.stderr
    assert f"exported {ALPHA + BETA} events to {target}" in proc.stderr
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["row"] for r in exported] == sorted(events)
    assert {r["row"]: r["payload"] for r in exported} == events

    table = list(csv.DictReader(io.StringIO(ok("export", "--db", str(outbox_db), "-f", "csv"))))
    assert {int(r["row"]): json.loads(r["payload"]) for r in table} == events
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
