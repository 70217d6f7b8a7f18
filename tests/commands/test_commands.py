"""Commands from a "cloud" client through a real Mosquitto to a running gateway: the
built-ins, every refusal reason the command layer gives, signatures, repeated ids,
deadlines and rate limits, results on the MQTT 5 response topic and on 3.1.1's."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.commands.cloud import Cloud, running
from tests.support import tidegate, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.ops.metrics import prometheus_text
from tidegate.ops.status import GatewayMonitor
from tidegate.ops.status_text import render_status

KEY = "correct horse battery staple"


def config(tmp_path: Path, broker: LocalBroker, *, protocol: str = "5", extra: str = "") -> str:
    (tmp_path / "cmd.key").write_text(KEY + "\n")
    return f"""
gateway: {{id: gw1, data_dir: {tmp_path}}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, protocol: "{protocol}"}}
drivers:
  - {{name: s1, type: sim, signals: [{{name: t, kind: sine, rate: 1}}]}}
commands:
  key_file: {tmp_path}/cmd.key
  allow:
    - {{name: ping}}
    - {{name: status, signed: false}}
    - {{name: rebirth, rate_limit: {{count: 2, per: 1h}}}}
{extra}
"""


def audit_rows(tmp_path: Path) -> list[tuple[str | None, str, str, str | None]]:
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        return db.execute(
            "SELECT coalesce(id, claimed), command, status, reason FROM command_audit ORDER BY seq"
        ).fetchall()


def test_ping_is_answered_on_the_response_topic_with_its_correlation(
    tmp_path: Path, broker: LocalBroker
) -> None:
    with running(config(tmp_path, broker)), Cloud(broker.port, "tidegate/gw1/cmd") as cloud:
        ident = cloud.send("ping", key=KEY)
        final = cloud.final(ident)
        assert final["status"] == "done"
        assert abs(final["result"]["pong"] - time.time()) < 60
        assert [r["status"] for r in cloud.of(ident)] == ["accepted", "done"]
        assert set(cloud.correlations) == {ident.encode()}
        status = cloud.final(cloud.send("status"))  # unsigned: `signed: false`
        assert status["status"] == "done"
        assert status["result"]["gateway"] == "gw1"
        assert status["result"]["uplinks"] == {"default": True}
    assert [row[:3] for row in audit_rows(tmp_path)] == [
        (ident, "ping", "done"),
        (status["id"], "status", "done"),
    ]


def test_on_mqtt_3_1_1_results_go_to_the_result_topic(tmp_path: Path, broker: LocalBroker) -> None:
    text = config(tmp_path, broker, protocol="3.1.1")
    with running(text), Cloud(broker.port, "tidegate/gw1/cmd", v5=False) as cloud:
        ident = cloud.send("ping", key=KEY)
        assert cloud.final(ident)["status"] == "done"


@pytest.mark.parametrize(
    ("send", "reason"),
    [
        ({"name": "reboot", "key": KEY}, "unknown_command"),
        ({"name": "ping"}, "not_authorised"),  # not signed
        ({"name": "ping", "key": "another key"}, "not_authorised"),
        ({"name": "ping", "key": KEY, "ts": time.time() - 3600}, "not_authorised"),
        ({"name": "ping", "key": KEY, "extra": {"deadline": time.time() - 5}}, "expired"),
        ({"name": "status", "extra": {"deadline": "soon"}}, "bad_request"),
    ],
    ids=["unknown", "unsigned", "wrong-key", "old-ts", "past-deadline", "bad-deadline"],
)
def test_refusals(
    tmp_path: Path, broker: LocalBroker, send: dict[str, object], reason: str
) -> None:
    with running(config(tmp_path, broker)), Cloud(broker.port, "tidegate/gw1/cmd") as cloud:
        ident = cloud.send(**send)  # type: ignore[arg-type]
        final = cloud.final(ident)
        assert (final["status"], final["reason"]) == ("refused", reason)
        assert [r["status"] for r in cloud.of(ident)] == ["refused"]  # never accepted
    rows = audit_rows(tmp_path)
    assert rows[-1][2:] == ("refused", reason)


def test_a_message_that_is_not_a_command_is_refused_as_a_bad_request(
    tmp_path: Path, broker: LocalBroker
) -> None:
    with (
        running(config(tmp_path, broker)) as gateway,
        Cloud(broker.port, "tidegate/gw1/cmd") as cloud,
    ):
        cloud.send("ping", ident="abc", raw=b"{not json")
        # The response topic still reaches the sender; the id could not be read.
        wait_until(lambda: any(r["status"] == "refused" for r in cloud.results), 10, "an answer")
        answer = cloud.results[-1]
        assert answer["reason"] == "bad_request"
        assert answer["id"] is None
        assert gateway.commands is not None
        assert gateway.commands.counters.refused == {"bad_request": 1}


def test_a_repeated_id_is_answered_with_the_first_result_and_not_run_again(
    tmp_path: Path, broker: LocalBroker
) -> None:
    with (
        running(config(tmp_path, broker)) as gateway,
        Cloud(broker.port, "tidegate/gw1/cmd") as cloud,
    ):
        first = cloud.send("rebirth", key=KEY, ident="once")
        assert cloud.final(first)["status"] == "done"
        cloud.send("rebirth", key=KEY, ident="once")
        wait_until(lambda: any(r.get("repeated") for r in cloud.of("once")), 10, "the repeat")
        repeat = next(r for r in cloud.of("once") if r.get("repeated"))
        assert repeat["status"] == "done"
        assert repeat["result"] == cloud.final(first)["result"]
        assert gateway.commands is not None
        assert gateway.commands.counters.done == 1
        assert gateway.commands.counters.repeated == 1
    assert [row[0] for row in audit_rows(tmp_path)] == ["once"]


def test_the_rate_limit_refuses_calls_beyond_it(tmp_path: Path, broker: LocalBroker) -> None:
    with running(config(tmp_path, broker)), Cloud(broker.port, "tidegate/gw1/cmd") as cloud:
        finals = [cloud.final(cloud.send("rebirth", key=KEY))["status"] for _ in range(3)]
        assert finals == ["done", "done", "refused"]
        assert cloud.results[-1]["reason"] == "rate_limited"


def test_a_repeated_id_after_a_restart_is_answered_from_the_audit(
    tmp_path: Path, broker: LocalBroker
) -> None:
    text = config(tmp_path, broker)
    with running(text), Cloud(broker.port, "tidegate/gw1/cmd") as cloud:
        assert cloud.final(cloud.send("ping", key=KEY, ident="p1"))["status"] == "done"
    with running(text) as gateway, Cloud(broker.port, "tidegate/gw1/cmd") as cloud:
        cloud.send("ping", key=KEY, ident="p1")
        wait_until(lambda: bool(cloud.of("p1")), 10, "the answer")
        assert cloud.of("p1")[0]["repeated"] is True
        assert gateway.commands is not None and gateway.commands.counters.done == 0


def test_the_audit_keeps_the_newest_but_never_an_id_that_could_be_replayed(
    tmp_path: Path, broker: LocalBroker
) -> None:
    text = config(tmp_path, broker).replace("  allow:", "  audit_keep: 3\n  allow:")
    with running(text) as gateway, Cloud(broker.port, "tidegate/gw1/cmd") as cloud:
        signed = cloud.send("ping", key=KEY, ident="signed-1")
        cloud.final(signed)
        refused = []
        for _ in range(5):  # unsigned pings: refused, their ids never taken as theirs
            refused.append(cloud.send("ping"))
            cloud.final(refused[-1])
        # A flood of refusals cannot push the signed command's id out of the audit...
        cloud.send("ping", key=KEY, ident="signed-1")
        wait_until(lambda: any(r.get("repeated") for r in cloud.of("signed-1")), 10, "repeat")
        assert gateway.commands is not None and gateway.commands.counters.done == 1
    ids = [row[0] for row in audit_rows(tmp_path)]
    # ...while the refused ones are kept to the newest, within audit_keep.
    assert ids == ["signed-1", *refused[-3:]]


def test_status_metrics_and_the_audit_export_show_the_commands(
    tmp_path: Path, broker: LocalBroker
) -> None:
    with (
        running(config(tmp_path, broker)) as gateway,
        Cloud(broker.port, "tidegate/gw1/cmd") as cloud,
    ):
        done = cloud.send("ping", key=KEY, ident="seen-1")
        refused = cloud.send("ping", ident="seen-2")  # unsigned
        cloud.final(done)
        cloud.final(refused)
        doc = GatewayMonitor(gateway).document()
    text = render_status(doc)
    assert "commands  ping, status, rebirth" in text
    assert "received 2 · done 1 · failed 0 · repeated 0 · refused 1 not_authorised" in text
    metrics = prometheus_text(doc)
    assert 'tidegate_commands_total{outcome="done"} 1' in metrics
    assert 'tidegate_commands_total{outcome="refused",reason="not_authorised"} 1' in metrics
    listed = tidegate("buffer", "commands", "--db", str(tmp_path / "outbox.db"), "--jsonl")
    assert listed.returncode == 0, listed.stderr
    rows = sorted((json.loads(line) for line in listed.stdout.splitlines()), key=lambda r: r["id"])
    assert [(r["id"], r["status"], r["reason"]) for r in rows] == [
        ("seen-1", "done", None),
        ("seen-2", "refused", "not_authorised"),
    ]
    assert "sig" not in rows[0]["message"]  # the signature is not kept
    assert rows[0]["result"]["status"] == "done"


def test_ids_and_response_topics_that_are_not_topics_never_reach_the_broker(
    tmp_path: Path, broker: LocalBroker
) -> None:
    with (
        running(config(tmp_path, broker)) as gateway,
        Cloud(broker.port, "tidegate/gw1/cmd") as cloud,
    ):
        assert gateway.publisher is not None
        connects = gateway.publisher.status.connects
        cloud.send("status", ident="ok-1", raw=b'{"id": "a/#"}')
        wait_until(lambda: any(r["id"] is None for r in cloud.results), 10, "the refusal")
        refused = next(r for r in cloud.results if r["id"] is None)
        assert refused["reason"] == "bad_request" and "letters, digits" in refused["message"]
        # Still connected, the same connection: nothing invalid was published.
        done = cloud.final(cloud.send("status"))
        assert done["status"] == "done"
        assert gateway.publisher.status.connects == connects


def test_an_id_another_command_used_is_refused_not_answered_as_a_repeat(
    tmp_path: Path, broker: LocalBroker
) -> None:
    with (
        running(config(tmp_path, broker)) as gateway,
        Cloud(broker.port, "tidegate/gw1/cmd") as cloud,
    ):
        assert cloud.final(cloud.send("status", ident="shared"))["status"] == "done"
        cloud.send("ping", key=KEY, ident="shared")
        wait_until(lambda: len(cloud.of("shared")) >= 3, 10, "the second answer")
        second = cloud.of("shared")[-1]
        assert (second["status"], second["reason"]) == ("refused", "bad_request")
        assert "used by a status command" in second["message"]
        assert gateway.commands is not None and gateway.commands.counters.repeated == 0
