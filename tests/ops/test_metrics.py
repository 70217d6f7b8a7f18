"""Metrics: the message on <prefix>/metrics through a real broker, and the
Prometheus text endpoint over real HTTP, built from a real running Gateway."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from tests.ops.test_control import running_gateway, until
from tests.support import GatewayProcess, Subscriber, wait_until, write_config
from tidegate.demo.local_broker import LocalBroker, free_port
from tidegate.ops.config import MetricsSection, PrometheusSection
from tidegate.ops.metrics import MetricsError, MetricsReporter, PrometheusEndpoint, prometheus_text
from tidegate.ops.status import GatewayMonitor

SAMPLE = re.compile(
    r'^tidegate_[a-z_]+(\{[a-z]+="[^"\\]*(\\.[^"\\]*)*"(,[a-z]+="[^"]*")*\})? -?[0-9.e+]+$'
)


def parse_exposition(text: str) -> dict[str, float]:
    """``name{labels}`` → value; checks that every family is announced before its samples."""
    announced: set[str] = set()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge"), line
            announced.add(name)
        elif line.startswith("# HELP "):
            continue
        else:
            assert SAMPLE.match(line), line
            key, value = line.rsplit(" ", 1)
            assert key.split("{")[0] in announced, f"{line}: no # TYPE before it"
            samples[key] = float(value)
    return samples


def test_prometheus_text_reports_the_running_gateway(tmp_path: Path) -> None:
    async def body() -> dict[str, Any]:
        async with running_gateway(tmp_path) as gateway:
            await until(lambda: gateway.outbox.stats.accepted >= 20, 20, "accepted events")
            return await GatewayMonitor(gateway).status()

    doc = asyncio.run(body())
    samples = parse_exposition(prometheus_text(doc))
    assert samples['tidegate_info{version="0.1.0",gateway="ctl"}'] == 1
    assert samples['tidegate_driver_up{driver="alpha"}'] == 1
    assert samples['tidegate_driver_events_total{driver="alpha"}'] == doc["drivers"][0]["events"]
    assert samples['tidegate_rule_in_total{rule="(default)"}'] >= 0
    assert samples["tidegate_outbox_events"] == doc["outbox"]["depth"] > 0
    assert samples["tidegate_outbox_accepted_total"] == doc["outbox"]["accepted"]
    assert "tidegate_outbox_oldest_age_seconds" in samples
    assert not any(k.startswith("tidegate_broker_") for k in samples)  # no broker configured

    # Label values are escaped; a value that is not known yet is left out, not written as None.
    doc["rules"].append({"name": 'odd "name" \\ here', "in": 1, "out": 1, "dropped": 0})
    doc["outbox"]["oldest_age_s"] = None
    samples = parse_exposition(prometheus_text(doc))
    assert samples['tidegate_rule_in_total{rule="odd \\"name\\" \\\\ here"}'] == 1
    assert "tidegate_outbox_oldest_age_seconds" not in samples


def get(method: str, port: int, path: str) -> tuple[int, str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        connection.close()


def test_prometheus_endpoint_serves_get_metrics_on_loopback(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_gateway(tmp_path) as gateway:
            endpoint = PrometheusEndpoint(GatewayMonitor(gateway), "127.0.0.1", 0)
            await endpoint.start()
            try:
                port = endpoint.port
                status, kind, text = await asyncio.to_thread(get, "GET", port, "/metrics")
                assert status == 200
                assert kind == "text/plain; version=0.0.4; charset=utf-8"
                assert "tidegate_events_in_total " in text
                assert (await asyncio.to_thread(get, "GET", port, "/"))[0] == 404
                assert (await asyncio.to_thread(get, "POST", port, "/metrics"))[0] == 405
                taken = PrometheusEndpoint(GatewayMonitor(gateway), "127.0.0.1", endpoint.port)
                with pytest.raises(MetricsError, match=f"127.0.0.1:{endpoint.port}"):
                    await taken.start()
            finally:
                await endpoint.close()

    asyncio.run(body())


def test_metrics_config_defaults_and_checks() -> None:
    section = MetricsSection()
    assert section.interval == 60.0 and section.publish and section.prometheus is None
    assert MetricsSection.model_validate({"interval": "5m"}).interval == 300.0
    prometheus = PrometheusSection()
    assert (prometheus.host, prometheus.port) == ("127.0.0.1", 9108)
    v6 = PrometheusSection(listen="[::1]:9200")
    assert (v6.host, v6.port) == ("::1", 9200)
    for bad in ("9108", "localhost:", "localhost:70000", "[nonsense]:1"):
        with pytest.raises(ValidationError):
            PrometheusSection(listen=bad)


def test_metrics_messages_reach_the_broker(tmp_path: Path, broker: LocalBroker) -> None:
    topic = "tidegate/ctl/metrics"
    subscriber = Subscriber(broker.host, broker.port, topic).start()
    # Stands in for the gateway's own connection (Gateway.publish_unbuffered, once wired).
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    connected = False

    def publish(topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        return connected and client.publish(topic, payload, qos, retain).rc == paho.MQTT_ERR_SUCCESS

    async def body() -> MetricsReporter:
        nonlocal connected
        async with running_gateway(tmp_path) as gateway:
            reporter = MetricsReporter(GatewayMonitor(gateway), publish, topic, interval=0.2)
            assert not await reporter.publish_once()  # not connected: skipped, not queued
            assert reporter.skipped == 1
            connected = True
            task = asyncio.create_task(reporter.run())
            try:
                await until(lambda: len(subscriber.snapshot()) >= 2, 20, "two metrics messages")
            finally:
                task.cancel()
            return reporter

    try:
        reporter = asyncio.run(body())
    finally:
        client.loop_stop()
        client.disconnect()
        subscriber.stop()
    assert reporter.published >= 2
    first = json.loads(subscriber.snapshot()[0].payload)
    assert first["gateway"] == "ctl" and first["time"].endswith("Z")
    assert first["drivers"][0]["name"] == "alpha" and "outbox" in first and "rates" in first
    assert not subscriber.snapshot()[0].retain


def test_gateway_process_publishes_metrics_and_serves_prometheus(
    tmp_path: Path, broker: LocalBroker
) -> None:
    port = free_port()
    subscriber = Subscriber(broker.host, broker.port, "tidegate/met/metrics").start()
    config = write_config(
        tmp_path / "tidegate.yaml",
        f"""
gateway: {{id: met, data_dir: {tmp_path / "data"}}}
mqtt: {{host: {broker.host}, port: {broker.port}}}
control: {{socket: {tmp_path / "control.sock"}}}
metrics: {{interval: 1s, prometheus: {{listen: "127.0.0.1:{port}"}}}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: 20}}]
""",
    )
    gateway = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        process = gateway.process
        assert process is not None
        wait_until(
            lambda: len(subscriber.snapshot()) >= 2 or process.poll() is not None,
            30,
            "two metrics messages",
        )
        assert process.poll() is None, gateway.output()
        doc = json.loads(subscriber.snapshot()[-1].payload)
        assert doc["gateway"] == "met" and doc["broker"]["connected"] is True
        assert doc["broker"]["delivered"] > 0
        status, _, text = get("GET", port, "/metrics")
        assert status == 200 and "tidegate_broker_connected 1" in text
    finally:
        subscriber.stop()
        assert gateway.stop() == 0, gateway.output()
