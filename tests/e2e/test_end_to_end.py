"""The whole path with real processes: sim → rules → outbox → Mosquitto → a subscriber."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.outbox.stored import stored_events, stored_payloads
from tests.support import (
    GatewayProcess,
    Subscriber,
    assert_contiguous,
    assert_same_ids_for_duplicates,
    wait_until,
    write_config,
)
from tidegate.demo.local_broker import LocalBroker


def gateway_config(tmp_path: Path, broker: LocalBroker, *, rate: int, count: int | None) -> Path:
    limit = f", count: {count}" if count is not None else ""
    half = f", count: {count // 2}" if count is not None else ""
    return write_config(
        tmp_path / "tidegate.yaml",
        f"""
gateway: {{id: e2e, data_dir: {tmp_path / "data"}}}
mqtt:
  host: {broker.host}
  port: {broker.port}
  reconnect: {{initial_delay: 100ms, max_delay: 1s}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: {rate}{limit}}}]
  - name: beta
    type: sim
    signals:
      - {{name: t, kind: sine, rate: {rate // 2}{half}}}
      - {{name: u, kind: toggle, rate: {rate // 2}{half}}}
""",
    )


def committed_seqs(data_dir: Path) -> dict[str, int]:
    db = sqlite3.connect(data_dir / "outbox.db")
    try:
        return dict(db.execute("SELECT source, last_seq FROM sources").fetchall())
    finally:
        db.close()


def outbox_depth(data_dir: Path) -> int:
    db = sqlite3.connect(data_dir / "outbox.db")
    try:
        return len(stored_events(db))
    finally:
        db.close()


def outbox_seqs(data_dir: Path) -> list[tuple[str, int]]:
    db = sqlite3.connect(data_dir / "outbox.db")
    try:
        docs = [json.loads(payload) for payload in stored_payloads(db)]
        return [(doc["source"], doc["seq"]) for doc in docs]
    finally:
        db.close()


def test_events_arrive_with_unique_ids_and_gapless_seq(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.host, broker.port, "tidegate/e2e/#").start()
    gw = GatewayProcess(
        gateway_config(tmp_path, broker, rate=100, count=None), tmp_path / "gw.log"
    ).start()
    try:
        wait_until(lambda: sub.count() >= 600, 30, "600 events at the subscriber")
    finally:
        code = gw.stop()
        sub.stop()
    assert code == 0, gw.output()
    events = sub.events()
    assert len({e["id"] for e in events}) == len(events)  # no duplicates in a clean run
    assert_contiguous(events)
    assert {e["source"] for e in events} == {"alpha", "beta"}
    sample = next(e for e in events if e["source"] == "alpha")
    assert set(sample) == {"id", "gateway", "source", "name", "value", "time", "seq"}
    assert sample["gateway"] == "e2e"
    # The retained birth message says we are online; after a clean stop, offline.
    status = [m for m in sub.snapshot() if m.topic == "tidegate/e2e/status"]
    assert [m.payload for m in status][:1] == [b"online"]
    assert status[-1].payload == b"offline"


def test_broker_outage_loses_nothing_and_outbox_drains(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "broker", persistent=True)
    broker.start()
    # A persistent subscriber session: the broker keeps its queue across the restart.
    sub = Subscriber(broker.host, broker.port, "tidegate/e2e/#")
    sub_client_id = "outage-sub"
    sub.start_persistent(sub_client_id)
    gw = GatewayProcess(
        gateway_config(tmp_path, broker, rate=200, count=1600), tmp_path / "gw.log"
    ).start()
    try:
        wait_until(lambda: sub.count() >= 200, 30, "events before the outage")
        broker.stop()
        wait_until(lambda: "connection lost" in gw.output(), 10, "the gateway to notice the outage")
        # The scenario: the broker stays away for 5 s while the sensors keep producing.
        time.sleep(5)
        broker.start()
        wait_until(
            lambda: committed_seqs(tmp_path / "data") == {"alpha": 1600, "beta": 1600},
            60,
            "every simulated event to be accepted",
        )
        wait_until(
            lambda: len({(e["source"], e["seq"]) for e in sub.events()}) >= 3200,
            60,
            "every accepted event at the subscriber",
        )
        wait_until(lambda: outbox_depth(tmp_path / "data") == 0, 10, "the outbox to drain")
    finally:
        code = gw.stop()
        sub.stop()
        broker.kill()
    assert code == 0, gw.output()
    events = sub.events()
    assert_contiguous(events, upto={"alpha": 1600, "beta": 1600})
    assert_same_ids_for_duplicates(events)


def test_kill_9_then_restart_delivers_everything_committed(
    tmp_path: Path, broker: LocalBroker
) -> None:
    sub = Subscriber(broker.host, broker.port, "tidegate/e2e/#").start()
    config = gateway_config(tmp_path, broker, rate=200, count=None)
    gw = GatewayProcess(config, tmp_path / "gw.log").start()
    wait_until(lambda: sub.count() >= 300, 30, "events before the crash")
    gw.kill()
    # The kernel closed the socket: the broker publishes our Last Will.
    wait_until(
        lambda: any(m.payload == b"offline" for m in sub.snapshot() if m.topic.endswith("/status")),
        10,
        "the Last Will 'offline'",
    )
    committed = committed_seqs(tmp_path / "data")
    assert committed["alpha"] > 0
    restarted = GatewayProcess(config, tmp_path / "gw2.log").start()
    try:

        def all_committed_received_and_new_ones_too() -> bool:
            got: dict[str, set[int]] = {}
            for e in sub.events():
                got.setdefault(e["source"], set()).add(e["seq"])
            return all(
                set(range(1, top + 1)) <= got.get(s, set()) and max(got[s]) > top + 50
                for s, top in committed.items()
            )

        wait_until(
            all_committed_received_and_new_ones_too,
            30,
            "every event committed before the crash, then new ones",
        )
    finally:
        code = restarted.stop()
        sub.stop()
    assert code == 0, restarted.output()
    events = sub.events()
    assert_contiguous(events)
    assert_same_ids_for_duplicates(events)
    after = committed_seqs(tmp_path / "data")
    assert all(after[s] > committed[s] for s in committed)  # seq kept increasing after restart


def test_sigterm_exits_0_within_5s_and_keeps_everything_accepted(
    tmp_path: Path, broker: LocalBroker
) -> None:
    sub = Subscriber(broker.host, broker.port, "tidegate/e2e/#").start()
    gw = GatewayProcess(
        gateway_config(tmp_path, broker, rate=400, count=None), tmp_path / "gw.log"
    ).start()
    try:
        wait_until(lambda: sub.count() >= 400, 30, "events before SIGTERM")
        started = time.monotonic()
        gw.signal(signal.SIGTERM)
        code = gw.wait(10)
        elapsed = time.monotonic() - started
    finally:
        gw.kill()
        sub.stop()
    assert code == 0, gw.output()
    assert elapsed < 5.0
    assert "Traceback" not in gw.output()
    # Accepted = delivered or still in the outbox: nothing in between.
    committed = committed_seqs(tmp_path / "data")
    have: dict[str, set[int]] = {}
    for e in sub.events():
        have.setdefault(e["source"], set()).add(e["seq"])
    for source, seq in outbox_seqs(tmp_path / "data"):
        have.setdefault(source, set()).add(seq)
    for source, top in committed.items():
        assert set(range(1, top + 1)) <= have[source], f"{source} lost events"


@pytest.mark.parametrize("signame", ["SIGINT"])
def test_sigint_also_stops_cleanly(tmp_path: Path, broker: LocalBroker, signame: str) -> None:
    gw = GatewayProcess(
        gateway_config(tmp_path, broker, rate=50, count=None), tmp_path / "gw.log"
    ).start()
    try:
        wait_until(lambda: "connected to broker" in gw.output(), 20, "the gateway to connect")
        gw.signal(getattr(signal, signame))
        assert gw.wait(10) == 0, gw.output()
    finally:
        gw.kill()


def test_a_clean_stop_sends_what_the_rules_flushed_while_the_broker_is_there(
    tmp_path: Path, broker: LocalBroker
) -> None:
    # At a stop the rules emit their open windows as partial; the final commit puts
    # them in the outbox, and with a broker connected they go out before the exit.
    config = write_config(
        tmp_path / "tidegate.yaml",
        f"""
gateway: {{id: flush, data_dir: {tmp_path / "data"}}}
mqtt: {{host: {broker.host}, port: {broker.port}}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: 50}}]
rules:
  - name: hourly
    match: {{source: alpha}}
    window: {{kind: tumbling, size: 1h, aggregate: [count]}}
""",
    )
    sub = Subscriber(broker.host, broker.port, "tidegate/flush/#").start()
    gw = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        wait_until(lambda: "connected to broker" in gw.output(), 20, "the gateway to connect")
        gw.signal(signal.SIGTERM)
        assert gw.wait(10) == 0, gw.output()
        wait_until(
            lambda: any(e.get("tags", {}).get("partial") == "true" for e in sub.events()),
            10,
            "the partial window at the subscriber",
        )
    finally:
        gw.kill()
        sub.stop()
    assert outbox_depth(tmp_path / "data") == 0, gw.output()
    assert "0 left in the outbox" in gw.output(), gw.output()
