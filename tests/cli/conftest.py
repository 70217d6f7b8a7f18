"""Fixtures of the CLI tests: an outbox made by real gateways, built once for the package
(see tests/cli/test_buffer_cli.py for what it holds)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.buffer_support import (
    ALPHA,
    BETA,
    GATEWAY,
    RAW_INPUT,
    REFUSED,
    dead_letter_count,
    gateway_config,
    query,
    run_until,
)
from tests.support import GatewayProcess, Subscriber
from tidegate.demo.local_broker import LocalBroker
from tidegate.outbox.store import DeadInput, Outbox


@pytest.fixture(scope="package")
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
            f"mqtt: {{host: {broker.host}, port: {broker.port}, "
            "reconnect: {initial_delay: 100ms}}",
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


@pytest.fixture
def running(
    outbox_db: Path, tmp_path: Path, broker: LocalBroker
) -> Iterator[tuple[GatewayProcess, Subscriber]]:
    """The made outbox's gateway, running again against a broker that accepts everything."""
    sub = Subscriber(broker.host, broker.port, f"tidegate/{GATEWAY}/#").start()
    config = gateway_config(
        tmp_path / "running.yaml",
        outbox_db.parent,
        f"mqtt: {{host: {broker.host}, port: {broker.port}, "
        "reconnect: {initial_delay: 100ms}}",
        "  - {name: alpha, type: sim, signals: [{name: n, kind: counter, rate: 200}]}",
    )
    gw = GatewayProcess(config, tmp_path / "running.log").start()
    try:
        yield gw, sub
    finally:
        gw.kill()
        sub.stop()
