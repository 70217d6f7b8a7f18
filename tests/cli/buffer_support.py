"""Helpers for the `tidegate buffer` tests: the commands as real processes, and the
outbox file they act on read with plain SQLite."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from tests.outbox.stored import stored_events
from tests.support import TIDEGATE, GatewayProcess, wait_until, write_config

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


def stored(db: Path) -> list[tuple[int, int, bytes]]:
    """(id, class, payload) of every undelivered event, rows and segments alike."""
    conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return stored_events(conn)
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


def stats_json(*where: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(ok("stats", "--json", *where))
    return result
