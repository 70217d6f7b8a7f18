"""The publisher against a real Mosquitto: protocols, batching, QoS, retain, auth, TLS."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import (
    TIDEGATE,
    GatewayProcess,
    Subscriber,
    assert_contiguous,
    delivered,
    run_in_process,
    wait_until,
    write_config,
)
from tidegate.demo.local_broker import LocalBroker
from tidegate.mqtt.credentials import Secret
from tidegate.pipeline import Gateway

PASSWORD = "s3cr3t-Pa55word-xyz"


def sim_config(data_dir: Path, mqtt: str, count: int = 300, extra: str = "") -> str:
    return f"""
gateway: {{id: pub, data_dir: {data_dir}}}
mqtt: {mqtt}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: s1
    type: sim
    signals: [{{name: a, kind: counter, rate: 2000, count: {count}}}]
  - name: s2
    type: sim
    signals: [{{name: b, kind: sine, rate: 2000, count: {count}}}]
{extra}
"""


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_both_protocol_versions_deliver(tmp_path: Path, broker: LocalBroker, protocol: str) -> None:
    sub = Subscriber(broker.host, broker.port, "tidegate/pub/#").start()
    mqtt = f"{{host: {broker.host}, port: {broker.port}, protocol: '{protocol}'}}"
    gateway = run_in_process(sim_config(tmp_path, mqtt), delivered(600))
    wait_until(lambda: sub.count() >= 600, 10, "600 events at the subscriber")
    sub.stop()
    assert gateway.outbox.stats.depth == 0
    events = sub.events()
    assert_contiguous(events)
    assert all(m.qos == 1 for m in sub.snapshot() if not m.topic.endswith("/status"))


def test_batched_messages_are_arrays_sharing_a_topic(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.host, broker.port, "tidegate/pub/#").start()
    mqtt = f"{{host: {broker.host}, port: {broker.port}, events_per_message: 50}}"
    run_in_process(sim_config(tmp_path, mqtt, count=1000), delivered(2000))
    wait_until(lambda: sub.count() >= 2000, 10, "2000 events at the subscriber")
    sub.stop()
    messages = [m for m in sub.snapshot() if not m.topic.endswith("/status")]
    assert len(messages) < 2000 / 10  # really batched
    for m in messages:
        doc = json.loads(m.payload)
        assert isinstance(doc, list) and 1 <= len(doc) <= 50
        assert {f"tidegate/pub/{e['source']}/{e['name']}" for e in doc} == {m.topic}
        seqs = [e["seq"] for e in doc]
        assert seqs == sorted(seqs)
    assert_contiguous(sub.events())


def test_qos0_and_retained_routes(tmp_path: Path, broker: LocalBroker) -> None:
    rules = """
rules:
  - name: latest-b
    match: {name: b}
    publish: {topic: "latest/{source}/{name}", qos: 0, retain: true}
"""
    mqtt = f"{{host: {broker.host}, port: {broker.port}}}"
    sub = Subscriber(broker.host, broker.port, "latest/#").start()
    run_in_process(sim_config(tmp_path, mqtt, count=200, extra=rules), delivered(400))
    wait_until(lambda: sub.count() >= 150, 10, "QoS 0 events")  # QoS 0 may lose a few
    sub.stop()
    assert {m.qos for m in sub.snapshot()} == {0}
    late = Subscriber(broker.host, broker.port, "latest/#").start()
    wait_until(lambda: late.snapshot() != [], 5, "the retained value for a late subscriber")
    late.stop()
    (retained,) = late.snapshot()
    assert retained.retain and retained.topic == "latest/s2/b"
    assert json.loads(retained.payload)["seq"] == 200


@pytest.fixture
def auth_broker(tmp_path: Path) -> LocalBroker:
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwd), "gw", PASSWORD],
        check=True,
        capture_output=True,
    )
    passwd.chmod(0o600)
    broker = LocalBroker(
        tmp_path / "auth-broker",
        extra_config=f"password_file {passwd}\n",
    )
    broker.start()
    return broker


def test_password_from_file_and_env(
    tmp_path: Path, auth_broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        # The listener is not anonymous: without credentials nothing is delivered.
        (tmp_path / "pw").write_text(PASSWORD + "\n")
        mqtt = (
            f"{{host: {auth_broker.host}, port: {auth_broker.port}, username: gw, "
            f"password_file: {tmp_path / 'pw'}}}"
        )
        run_in_process(sim_config(tmp_path / "a", mqtt, count=50), delivered(100))
        monkeypatch.setenv("TG_TEST_PW", PASSWORD)
        mqtt = (
            f"{{host: {auth_broker.host}, port: {auth_broker.port}, username: gw, "
            "password_env: TG_TEST_PW}"
        )
        run_in_process(sim_config(tmp_path / "b", mqtt, count=50), delivered(100))
    finally:
        auth_broker.kill()


def test_wrong_password_is_retried_never_logged_and_loses_nothing(
    tmp_path: Path, auth_broker: LocalBroker
) -> None:
    wrong = "not-the-" + PASSWORD
    (tmp_path / "pw").write_text(wrong)
    config = write_config(
        tmp_path / "tidegate.yaml",
        sim_config(
            tmp_path / "data",
            f"{{host: {auth_broker.host}, port: {auth_broker.port}, username: gw, "
            f"password_file: {tmp_path / 'pw'}, "
            "reconnect: {initial_delay: 50ms, max_delay: 200ms}}",
            count=100,
        ).replace("gateway: {id: pub,", "gateway: {id: pub, log_level: debug,"),
    )
    gw = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        wait_until(lambda: "not authorized" in gw.output().lower(), 15, "the refusal in the log")
    finally:
        code = gw.stop()
        auth_broker.kill()
    assert code == 0
    out = gw.output()
    assert wrong not in out and PASSWORD not in out
    assert "Traceback" not in out


def test_secret_does_not_show_itself() -> None:
    secret = Secret(PASSWORD)
    assert PASSWORD not in repr(secret) and PASSWORD not in str(secret)
    assert PASSWORD not in repr({"password": secret})


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "pki"
    d.mkdir()
    files = {
        n: d / n
        for n in (
            "ca.key",
            "ca.crt",
            "server.key",
            "server.csr",
            "server.crt",
            "client.key",
            "client.csr",
            "client.crt",
            "ext.cnf",
        )
    }
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(files["ca.key"]),
        "-out",
        str(files["ca.crt"]),
    )
    files["ext.cnf"].write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who, cn in (("server", "127.0.0.1"), ("client", "gateway")):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            str(files[f"{who}.key"]),
            "-out",
            str(files[f"{who}.csr"]),
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(files[f"{who}.csr"]),
            "-CA",
            str(files["ca.crt"]),
            "-CAkey",
            str(files["ca.key"]),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(files["ext.cnf"]),
            "-out",
            str(files[f"{who}.crt"]),
        )
    return files


def tls_broker(tmp_path: Path, pki: dict[str, Path], require_client_cert: bool) -> LocalBroker:
    broker = LocalBroker(tmp_path / "tls-broker")
    broker.extra_config = (
        f"cafile {pki['ca.crt']}\ncertfile {pki['server.crt']}\nkeyfile {pki['server.key']}\n"
        + ("require_certificate true\n" if require_client_cert else "")
    )
    broker.start()
    return broker


def test_tls_with_ca_file_and_client_certificate(
    tmp_path: Path, tls_files: dict[str, Path]
) -> None:
    broker = tls_broker(tmp_path, tls_files, require_client_cert=True)
    try:
        mqtt = (
            f"{{host: 127.0.0.1, port: {broker.port}, tls: {{ca_file: {tls_files['ca.crt']}, "
            f"cert_file: {tls_files['client.crt']}, key_file: {tls_files['client.key']}}}}}"
        )
        gateway = run_in_process(sim_config(tmp_path / "d", mqtt, count=50), delivered(100))
        assert gateway.outbox.stats.depth == 0
    finally:
        broker.kill()


def test_tls_verifies_the_server_by_default(tmp_path: Path, tls_files: dict[str, Path]) -> None:
    broker = tls_broker(tmp_path, tls_files, require_client_cert=False)
    try:
        # No ca_file: the system CAs do not know our test CA, so nothing may be sent.
        mqtt = (
            f"{{host: 127.0.0.1, port: {broker.port}, tls: {{}}, "
            "reconnect: {initial_delay: 50ms}}"
        )

        def refused(gateway: Gateway) -> bool:
            status = gateway.publisher.status if gateway.publisher else None
            return (
                status is not None
                and "CERTIFICATE_VERIFY_FAILED" in (status.last_error or "")
                and gateway.outbox.stats.accepted == 40
            )

        gateway = run_in_process(sim_config(tmp_path / "v", mqtt, count=20), refused)
        assert gateway.publisher is not None and gateway.publisher.status.events_delivered == 0
        assert gateway.outbox.stats.depth == 40  # kept, not lost
        # verify: false is an explicit opt-out (testing only).
        mqtt = f"{{host: 127.0.0.1, port: {broker.port}, tls: {{verify: false}}}}"
        run_in_process(sim_config(tmp_path / "v", mqtt, count=20), delivered(80))
    finally:
        broker.kill()


def test_an_unreadable_tls_file_is_a_config_error_not_a_restart_loop(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "t.yaml",
        sim_config(tmp_path / "d", f"{{host: 127.0.0.1, tls: {{ca_file: {tmp_path / 'no.pem'}}}}}"),
    )
    proc = subprocess.run(
        [*TIDEGATE, "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2  # systemd's RestartPreventExitStatus=2: no restart loop
    assert f"mqtt.tls.ca_file: cannot read {tmp_path / 'no.pem'}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_batches_stay_under_the_broker_limit(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "small", extra_config="message_size_limit 4000\n")
    broker.start()
    try:
        sub = Subscriber(broker.host, broker.port, "tidegate/pub/#").start()
        mqtt = (
            f"{{host: {broker.host}, port: {broker.port}, events_per_message: 100, "
            "max_message_bytes: 3000}"
        )
        run_in_process(sim_config(tmp_path / "d", mqtt, count=300), delivered(600))
        wait_until(lambda: sub.count() >= 600, 10, "every event at the subscriber")
        sub.stop()
        sizes = [len(m.payload) for m in sub.snapshot() if not m.topic.endswith("/status")]
        assert max(sizes) <= 3000
        assert_contiguous(sub.events())
    finally:
        broker.kill()


def test_a_message_the_broker_always_refuses_is_dead_lettered_not_retried_forever(
    tmp_path: Path,
) -> None:
    # Mosquitto answers a PUBLISH over 2000 B with a PUBACK "packet too large" (MQTT 5)
    # and drops it; our limit is set too high, so the large batches are refused, each
    # on its own, on the same connection; smaller ones get through.
    broker = LocalBroker(tmp_path / "refusing", extra_config="message_size_limit 2000\n")
    broker.start()
    try:
        mqtt = (
            f"{{host: {broker.host}, port: {broker.port}, events_per_message: 50, "
            "reconnect: {initial_delay: 50ms, max_delay: 200ms}}"
        )

        def settled(gateway: Gateway) -> bool:
            status = gateway.publisher.status if gateway.publisher else None
            return status is not None and status.events_delivered + status.events_rejected >= 100

        gateway = run_in_process(sim_config(tmp_path / "d", mqtt, count=50), settled, timeout=30)
        assert gateway.publisher is not None
        status = gateway.publisher.status
        assert status.events_rejected > 0
        assert status.connects == 1  # refused is not lost: no reconnect at all
        assert gateway.outbox.stats.depth == 0
        assert gateway.outbox.stats.dead_letters == status.events_rejected
    finally:
        broker.kill()
