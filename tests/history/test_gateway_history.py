"""A gateway with `history:` fed by the sim driver writes its own file, in batches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.commands.cloud import running
from tests.support import tidegate, wait_until
from tidegate.config.loader import load_config_text
from tidegate.errors import ConfigError
from tidegate.ops.status import GatewayMonitor

CONFIG = """
gateway: {{id: hist, data_dir: {data}}}
drivers:
  - name: greenhouse
    type: sim
    signals:
      - {{name: temperature, kind: sine, rate: 200, offset: 21, amplitude: 4, period: 10s,
         unit: "°C"}}
      - {{name: door_open, kind: toggle, interval: 0.1s, probability: 0.5}}
rules:
  - name: hot
    match: {{source: greenhouse, name: temperature}}
    alarm: {{above: 23, clear_below: 22}}
history:
  flush_interval: 0.2s
{extra}
"""


def rows(path: Path, sql: str) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute(sql).fetchone()[0])


def test_history_off_adds_nothing(tmp_path: Path) -> None:
    text = CONFIG.format(data=tmp_path, extra="").replace("history:\n  flush_interval: 0.2s\n", "")
    with running(text, connected=False) as gateway:
        assert gateway.history is None
        assert not gateway.tap.active
    assert not (tmp_path / "history.db").exists()


def test_gateway_writes_numbers_and_alarms_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with running(CONFIG.format(data=tmp_path, extra=""), connected=False) as gateway:
        history = gateway.history
        assert history is not None
        wait_until(lambda: history.flushes >= 3, 10, "three flushes")
        wait_until(lambda: rows(path, "SELECT count(*) FROM markers") >= 1, 10, "an alarm marker")
        accepted = gateway.stats.events_in
        shown = GatewayMonitor(gateway).document()["history"]  # what `top` finds it by
        assert shown["path"] == str(path) and shown["flushes"] >= 3
    assert history.store.commits == history.flushes
    samples = rows(path, "SELECT count(*) FROM samples")
    assert samples >= accepted * 0.9  # readings only (the toggle's booleans are not numbers)
    assert history.flushes < samples / 10  # many values per transaction
    assert rows(path, "SELECT count(*) FROM signals") == 1  # temperature; not door_open
    assert rows(path, "SELECT count(*) FROM rollups WHERE every = 60") >= 1
    assert history.dropped == 0
    assert (tmp_path / "outbox.db").is_file()  # the outbox is its own file
    shown = tidegate("plot", "greenhouse/temperature", "--last", "1h", "--db", str(path))
    assert shown.returncode == 0, shown.stderr
    assert "greenhouse/temperature (°C)" in shown.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  tiers: [{every: 15m, keep: 30d}, {every: 1m, keep: 40d}]", "`every` must grow"),
        ("  tiers: [{every: 1m, keep: 1m}]", "at least two buckets"),
        ("  max_bytes: 10kB", "max_bytes"),
        ("  flush: 1s", "flush"),
    ],
)
def test_bad_history_sections_are_refused_at_load(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config_text(CONFIG.format(data="/tmp/x", extra=extra))
    assert message in str(error.value)


def test_the_history_is_never_the_outbox(tmp_path: Path) -> None:
    from tidegate.history.recorder import history_path  # noqa: PLC0415

    config = load_config_text(
        CONFIG.format(data=tmp_path, extra=f"  path: {tmp_path / 'outbox.db'}")
    )
    with pytest.raises(ConfigError, match="outbox"):
        history_path(config)
