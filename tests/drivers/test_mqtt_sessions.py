"""The ``mqtt`` driver's sessions: broker restarts, messages published while the gateway
is away, acknowledgements held until the pipeline has the events, credentials, and
``tidegate run`` bridging a device broker to the cloud broker. Restarts are real
process stops and starts of Mosquitto and of the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.drivers.devices import SENSOR, Message, mqtt_config, mqtt_on, publish, q1
from tests.drivers.harness import WAIT, Probe, eventually
from tests.support import GatewayProcess, Subscriber, wait_until, write_config
from tidegate.demo.local_broker import LocalBroker
from tidegate.driver import DriverState
from tidegate.drivers.mqtt.driver import MqttDriver


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
@pytest.mark.parametrize("broker_keeps_sessions", [True, False])
def test_subscription_works_again_after_a_broker_restart(
    tmp_path: Path, protocol: str, broker_keeps_sessions: bool
) -> None:
    device_broker = LocalBroker(tmp_path / "broker", persistent=broker_keeps_sessions)
    device_broker.start()

    async def scenario() -> None:
        probe = Probe()
        config = mqtt_config(device_broker.port, SENSOR, protocol=protocol)
        async with mqtt_on(config, probe) as driver:
            await publish(device_broker.port, [q1("tele/a/SENSOR", '{"t": 1}')])
            await eventually(lambda: len(probe.events) == 1, "the first event")
            device_broker.stop()
            await eventually(
                lambda: driver.health.state is DriverState.RECONNECTING, "the lost connection"
            )
            device_broker.start()
            await eventually(
                lambda: driver.connects == 2 and driver.health.state is DriverState.RUNNING,
                "reconnected and subscribed",
            )
            await publish(device_broker.port, [q1("tele/b/SENSOR", '{"t": 2}')])
            await eventually(
                lambda: ("b", "t", 2.0) in probe.triples(), "an event after the restart"
            )
        # At least once: a broker that keeps sessions may send "a" again when its PUBACK
        # was still unsent at the stop; a broker that forgets them cannot.
        got = probe.triples()
        assert got[0] == ("a", "t", 1.0) and got[-1] == ("b", "t", 2.0)
        assert got[1:-1] in ([], [("a", "t", 1.0)] if broker_keeps_sessions else [])

    try:
        asyncio.run(scenario())
    finally:
        device_broker.kill()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
@pytest.mark.parametrize("persistent", [True, False])
def test_qos1_messages_published_while_the_gateway_is_away(
    broker: LocalBroker, protocol: str, persistent: bool
) -> None:
    """A persistent session gets them on return; a clean session does not (the control)."""

    async def scenario() -> None:
        config = mqtt_config(
            broker.port, SENSOR, protocol=protocol, persistent_session=persistent
        )
        async with mqtt_on(config, Probe()):
            pass  # subscribed once, then stopped: the gateway restarts
        await publish(broker.port, [q1(f"tele/d{i}/SENSOR", f'{{"t": {i}}}') for i in range(3)])
        probe = Probe()
        async with mqtt_on(config, probe):
            await publish(broker.port, [q1("tele/marker/SENSOR", '{"t": 99}')])
            await eventually(lambda: ("marker", "t", 99.0) in probe.triples(), "the marker")
        away = [("d0", "t", 0.0), ("d1", "t", 1.0), ("d2", "t", 2.0)] if persistent else []
        assert probe.triples() == [*away, ("marker", "t", 99.0)]

    asyncio.run(scenario())


def test_a_message_not_yet_handed_to_the_pipeline_is_delivered_again(
    broker: LocalBroker,
) -> None:
    """Acks wait for emit: a gateway that dies with the message in hand gets it again."""

    async def scenario() -> None:
        config = mqtt_config(broker.port, SENSOR)
        stuck = Probe()
        stuck.gate = asyncio.Event()
        driver = MqttDriver(config, stuck.context)
        task = asyncio.create_task(driver.run(stuck.emit))
        await eventually(lambda: driver.health.state is DriverState.RUNNING, "subscribed")
        await publish(broker.port, [q1("tele/a/SENSOR", '{"t": 1}')])
        await eventually(lambda: stuck.blocked == 1, "the message held in emit")
        task.cancel()  # the "crash": emit never returned, so nothing was acknowledged
        with contextlib.suppress(asyncio.CancelledError):
            await task
        probe = Probe()
        async with mqtt_on(config, probe):
            await eventually(lambda: len(probe.events) == 1, "the message again")
        assert probe.triples() == [("a", "t", 1.0)]

    asyncio.run(scenario())


def test_topics_left_in_an_old_session_are_rejected_as_unmatched(broker: LocalBroker) -> None:
    async def scenario() -> None:
        old = mqtt_config(broker.port, [{"topic": "old/+", "parse": {"format": "raw"}}])
        async with mqtt_on(old, Probe()):
            pass
        new = mqtt_config(broker.port, [{"topic": "new/+", "parse": {"format": "raw"}}])
        probe = Probe()
        async with mqtt_on(new, probe):
            await publish(broker.port, [q1("old/x", "stale"), q1("new/x", "fresh")])
            await eventually(lambda: len(probe.events) == 1, "the new topic's event")
        assert probe.rejects == [
            (b"stale", "topic 'old/x': matches no subscription (left over in a persistent "
                       "session?)")
        ]

    asyncio.run(scenario())


def test_password_from_the_environment_and_never_in_errors_or_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    password = "s3cret-Pw-123"
    password_file = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(password_file), "tidegate", password], check=True
    )
    secured = LocalBroker(
        tmp_path / "broker",
        extra_config=f"allow_anonymous false\npassword_file {password_file}",
    )
    secured.start()
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        monkeypatch.setenv("LOCAL_BROKER_PW", password)
        config = mqtt_config(
            secured.port, SENSOR, username="tidegate", password_env="LOCAL_BROKER_PW"
        )
        probe = Probe()
        async with mqtt_on(config, probe):
            await publish(
                secured.port, [q1("tele/a/SENSOR", '{"t": 1}')],
                username="tidegate", password=password,
            )
            await eventually(lambda: len(probe.events) == 1, "an event")
        monkeypatch.setenv("LOCAL_BROKER_PW", password + "-wrong")
        driver = MqttDriver(config, probe.context)
        task = asyncio.create_task(driver.run(probe.emit))
        await eventually(lambda: driver.health.last_error is not None, "a refused connection")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert driver.health.state is DriverState.STOPPED
        assert driver.health.last_error is not None
        assert "not authori" in driver.health.last_error.lower()
        assert repr(config).count(password) == 0

    try:
        asyncio.run(scenario())
    finally:
        secured.kill()
    assert password not in caplog.text
    assert "refused the connection" in caplog.text


# --- the gateway as a whole ---------------------------------------------------------


def test_end_to_end_from_a_device_topic_to_the_cloud_through_tidegate_run(
    tmp_path: Path,
) -> None:
    """`tidegate run` bridges the device broker to the cloud broker, and keeps the QoS 1
    messages published while it was restarting."""
    device = LocalBroker(tmp_path / "device")
    cloud = LocalBroker(tmp_path / "cloud")
    device.start()
    cloud.start()
    config = write_config(
        tmp_path / "tidegate.yaml",
        f"""
gateway: {{id: e2e, data_dir: {tmp_path / "data"}}}
mqtt: {{host: 127.0.0.1, port: {cloud.port}, topic_prefix: "site/{{gateway}}"}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: devices
    type: mqtt
    port: {device.port}
    reconnect: {{initial_delay: 50ms, max_delay: 500ms}}
    subscriptions:
      - topic: tele/+/SENSOR
        source: "{{topic[1]}}"
        parse:
          format: json
          fields: {{AM2301.Temperature: {{name: temperature, unit: "°C"}}}}
""",
    )
    # The driver's session exists before the gateway first starts (its client id is fixed:
    # tidegate-<gateway>-<driver>), so nothing published from here on can be missed.
    session = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="tidegate-e2e-devices", clean_session=False
    )
    subscribed = threading.Event()
    session.on_subscribe = lambda *_: subscribed.set()
    session.connect("127.0.0.1", device.port)
    session.subscribe("tele/+/SENSOR", qos=1)
    session.loop_start()
    wait_until(subscribed.is_set, WAIT, "the session's subscription")
    session.disconnect()
    session.loop_stop()

    watcher = Subscriber("127.0.0.1", cloud.port, "site/#").start()
    gateway = GatewayProcess(config, tmp_path / "gateway.log")

    def temperatures() -> list[tuple[str, str, Any, str]]:
        return [(e["source"], e["name"], e["value"], e["unit"]) for e in watcher.events()]

    def tele(device_name: str, value: float) -> Message:
        return q1(f"tele/{device_name}/SENSOR", json.dumps({"AM2301": {"Temperature": value}}))

    try:
        gateway.start()
        asyncio.run(publish(device.port, [tele("kitchen", 21.5)]))
        wait_until(lambda: len(temperatures()) == 1, WAIT, "the event at the cloud broker")
        assert temperatures() == [("kitchen", "temperature", 21.5, "°C")]
        assert [m.topic for m in watcher.snapshot() if not m.topic.endswith("status")] == [
            "site/e2e/kitchen/temperature"
        ]
        assert gateway.stop() == 0
        asyncio.run(publish(device.port, [tele("cellar", 12.0), tele("attic", 30.5)]))
        gateway = GatewayProcess(config, tmp_path / "gateway.log").start()
        wait_until(lambda: len(temperatures()) == 3, WAIT, "the events sent during the restart")
        assert temperatures()[1:] == [
            ("cellar", "temperature", 12.0, "°C"),
            ("attic", "temperature", 30.5, "°C"),
        ]
        assert gateway.stop() == 0
        assert "Traceback" not in gateway.output()
    finally:
        gateway.kill()
        watcher.stop()
        device.kill()
        cloud.kill()
