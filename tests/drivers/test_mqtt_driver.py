"""The ``mqtt`` driver against a real Mosquitto: devices publish, the driver emits events.

Messages are published with aiomqtt (another real client) to a private broker; the
driver subscribes with paho, parses, and hands batches to ``emit``. Broker restarts
and gateway restarts are real process stops and starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import struct
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import GatewayProcess, Subscriber, wait_until, write_config
from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker
from tidegate.driver import DriverContext, DriverState
from tidegate.drivers.mqtt import driver as mqtt_driver
from tidegate.drivers.mqtt.driver import MqttDriver, MqttInputConfig
from tidegate.drivers.mqtt.topics import TopicError, TopicTemplate, clean_name, filter_matches
from tidegate.event import Event

WAIT = 10.0  # a deadline for conditions; a passing test never waits this long

Message = tuple[str, bytes, int, bool]
"""topic, payload, qos, retain"""


class Probe:
    """What the pipeline would see: emitted batches and rejects. ``gate`` holds emit."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.rejects: list[tuple[bytes, str]] = []
        self.gate: asyncio.Event | None = None
        self.blocked = 0
        self.held = 0
        """Events in the batches waiting at the gate."""

    async def emit(self, batch: Sequence[Event]) -> None:
        if self.gate is not None and not self.gate.is_set():
            self.blocked += 1
            self.held += len(batch)
            await self.gate.wait()
        self.batches.append(list(batch))

    def reject(self, raw: bytes, reason: str) -> None:
        self.rejects.append((raw, reason))

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]

    def triples(self) -> list[tuple[str, str, Any]]:
        return [(e.source, e.name, e.value) for e in self.events]


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def driver_config(port: int, subscriptions: list[dict[str, Any]], **keys: Any) -> MqttInputConfig:
    return MqttInputConfig.model_validate(
        {
            "name": "site",
            "type": "mqtt",
            "port": port,
            "reconnect_min": 0.05,
            "reconnect_max": 0.5,
            "connect_timeout": 2,
            "subscriptions": subscriptions,
            **keys,
        }
    )


@asynccontextmanager
async def running(config: MqttInputConfig, probe: Probe) -> AsyncIterator[MqttDriver]:
    """The driver, subscribed, until the block ends; then it must stop cleanly."""
    driver = MqttDriver(config, DriverContext("gw", probe.reject))
    task = asyncio.create_task(driver.run(probe.emit))
    try:
        await eventually(
            lambda: driver.health.state is DriverState.RUNNING or task.done(), "subscribed"
        )
        if task.done():
            task.result()
        yield driver
    finally:
        if probe.gate is not None:
            probe.gate.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert driver.health.state is DriverState.STOPPED


async def publish(port: int, messages: Sequence[Message], **client: Any) -> None:
    """Publish with another real client, each QoS > 0 message acknowledged in turn."""
    async with aiomqtt.Client("127.0.0.1", port, **client) as publisher:
        for topic, payload, qos, retain in messages:
            await publisher.publish(topic, payload, qos=qos, retain=retain)


def q1(topic: str, payload: bytes | str) -> Message:
    return (topic, payload.encode() if isinstance(payload, str) else payload, 1, False)


# --- formats ------------------------------------------------------------------------

FORMATS: dict[str, tuple[dict[str, Any], bytes, list[tuple[str, Any, str | None]]]] = {
    "json": (
        {"format": "json", "fields": {"t": {"name": "temperature", "unit": "°C"},
                                      "env.h": {"name": "humidity", "unit": "%"}}},
        b'{"t": 21.5, "env": {"h": 40}}',
        [("temperature", 21.5, "°C"), ("humidity", 40.0, "%")],
    ),
    "kv": (
        {"format": "kv", "fields": {"T": {"name": "temperature"}, "N": {"type": "int"}}},
        b"T=21.5,N=7",
        [("temperature", 21.5, None), ("N", 7, None)],
    ),
    "csv": (
        {"format": "csv", "delimiter": ";", "columns": ["t", "h", "door"],
         "fields": {"door": {"type": "bool"}}, "unlisted": "include"},
        b"21.5;40;1",
        [("door", True, None), ("t", 21.5, None), ("h", 40.0, None)],
    ),
    "regex": (
        {"format": "regex", "pattern": r"^\$WIMDA,(?P<inhg>[0-9.]+),I,(?P<bar>[0-9.]+),B",
         "fields": {"bar": {"name": "pressure", "scale": 1000, "unit": "hPa"}}},
        b"$WIMDA,29.9139,I,1.0130,B,21.5,C",
        [("pressure", pytest.approx(1013.0), "hPa")],
    ),
    "struct": (
        {"format": "struct", "byte_order": "little",
         "fields": {"pulses": {"offset": 0, "type": "u32"},
                    "temp": {"offset": 4, "type": "i16", "scale": 0.1, "unit": "°C"}}},
        struct.pack("<Ih", 123456, -25),
        [("pulses", 123456, None), ("temp", pytest.approx(-2.5), "°C")],
    ),
    "raw": ({"format": "raw"}, b"hello world", [("raw", "hello world", None)]),
    "raw-hex": ({"format": "raw", "encoding": "hex", "name": "frame"}, b"\x01\xab",
                [("frame", "01ab", None)]),
}


@pytest.mark.parametrize("case", sorted(FORMATS))
def test_each_format_turns_messages_into_events(broker: LocalBroker, case: str) -> None:
    parse, payload, expected = FORMATS[case]

    async def scenario() -> None:
        probe = Probe()
        config = driver_config(broker.port, [{"topic": "dev/#", "parse": parse}])
        async with running(config, probe):
            await publish(broker.port, [q1("dev/x", payload)])
            await eventually(lambda: len(probe.events) >= len(expected), f"{case} events")
        got = [(e.name, e.value, e.unit) for e in probe.events]
        assert got == expected
        assert {e.source for e in probe.events} == {"site"}  # default: the driver's name
        assert probe.rejects == []

    asyncio.run(scenario())


def test_source_and_name_come_from_topic_levels(broker: LocalBroker) -> None:
    subscriptions = [
        {"topic": "tele/+/SENSOR", "source": "{topic[1]}",
         "parse": {"format": "json", "fields": {"AM2301.Temperature": {"name": "temperature"}}}},
        {"topic": "home/+/+", "source": "{topic[1]}", "name": "{topic[2]}",
         "parse": {"format": "csv", "columns": ["value"], "fields": {"value": {}}}},
        {"topic": "z2m/#", "source": "z2m-{topic[1]}", "name": "{topic[-1]}.{field}",
         "parse": {"format": "json", "unlisted": "include"}},
        {"topic": "stat/+/POWER", "source": "{driver}-{topic[-2]}", "name": "power",
         "parse": {"format": "csv", "columns": ["on"], "fields": {"on": {"type": "bool"}}}},
    ]

    async def scenario() -> None:
        probe = Probe()
        async with running(driver_config(broker.port, subscriptions), probe):
            await publish(
                broker.port,
                [
                    q1("tele/kitchen/SENSOR", '{"AM2301": {"Temperature": 21.5}}'),
                    q1("home/cellar/humidity", "61.2"),
                    q1("z2m/Living Room/sensor", '{"battery": 90}'),
                    q1("stat/plug-1/POWER", "ON"),
                ],
            )
            await eventually(lambda: len(probe.events) >= 4, "four events")
        assert probe.triples() == [
            ("kitchen", "temperature", 21.5),
            ("cellar", "humidity", 61.2),
            ("z2m-Living_Room", "sensor.battery", 90),  # cleaned: no spaces in names
            ("site-plug-1", "power", True),
        ]

    asyncio.run(scenario())


def test_bad_messages_are_rejected_with_reasons_and_reading_goes_on(broker: LocalBroker) -> None:
    subscriptions = [
        {"topic": "j/+", "parse": {"format": "json", "fields": {"t": {"required": True}}}},
        {"topic": "c/+", "parse": {"format": "csv", "columns": ["a", "b"],
                                   "unlisted": "include"}},
        {"topic": "s/+", "parse": {"format": "struct", "fields": {"v": {"offset": 2,
                                                                        "type": "u16"}}}},
        {"topic": "deep/#", "source": "{topic[2]}", "parse": {"format": "raw"}},
    ]

    async def scenario() -> None:
        probe = Probe()
        async with running(driver_config(broker.port, subscriptions), probe) as driver:
            await publish(
                broker.port,
                [
                    q1("j/1", "{not json"),
                    q1("j/1", '{"h": 1}'),
                    q1("c/1", "1,2,3"),
                    q1("s/1", b"\x00\x01\x02"),
                    q1("deep/a", "x"),
                    q1("j/1", '{"t": 5}'),
                ],
            )
            await eventually(lambda: len(probe.events) == 1, "the good message after the bad")
            assert driver.rejects == 5 and driver.health.errors == 5
            assert driver.health.state is DriverState.RUNNING
        reasons = [reason for _, reason in probe.rejects]
        patterns = [
            r"^topic 'j/1': not JSON",
            r"^topic 'j/1': required field 't' is missing",
            r"^topic 'c/1': expected 2 columns, got 3",
            r"^topic 's/1': frame of 3 bytes is too short for field 'v'",
            r"^topic 'deep/a': '\{topic\[2\]\}' reads level 2, but 'deep/a' has 2 levels",
        ]
        for reason, pattern in zip(reasons, patterns, strict=True):
            assert re.search(pattern, reason), reason
        assert [raw for raw, _ in probe.rejects][:2] == [b"{not json", b'{"h": 1}']
        assert probe.triples() == [("site", "t", 5.0)]

    asyncio.run(scenario())


def test_retained_messages_are_skipped_unless_the_subscription_wants_them(
    broker: LocalBroker,
) -> None:
    async def scenario() -> None:
        await publish(broker.port, [("state/a", b"1", 1, True), ("state/b", b"2", 1, True)])
        probe = Probe()
        subscriptions: list[dict[str, Any]] = [
            {"topic": "state/a", "parse": {"format": "raw", "name": "a"}},
            {"topic": "state/b", "retained": True, "parse": {"format": "raw", "name": "b"}},
        ]
        async with running(driver_config(broker.port, subscriptions), probe) as driver:
            await eventually(lambda: len(probe.events) == 1, "the wanted retained message")
            # A live message is an event even when its publisher set the retain flag.
            await publish(broker.port, [("state/a", b"3", 1, True)])
            await eventually(lambda: len(probe.events) == 2, "the live message")
            assert driver.retained_skipped == 1
        assert [(e.name, e.value) for e in probe.events] == [("b", "2"), ("a", "3")]

    asyncio.run(scenario())


# --- batching and flow control --------------------------------------------------------


def test_messages_waiting_while_emit_is_busy_go_out_as_one_batch(broker: LocalBroker) -> None:
    async def scenario() -> None:
        probe = Probe()
        probe.gate = asyncio.Event()
        config = driver_config(broker.port, [{"topic": "n/+", "parse": {"format": "kv",
                                                                         "unlisted": "include"}}])
        async with running(config, probe) as driver:
            await publish(broker.port, [q1(f"n/{i % 3}", f"i={i}") for i in range(300)])
            # The first burst is held in emit; the rest waits, unacknowledged.
            await eventually(lambda: probe.held + driver.waiting == 300, "300 arrivals")
            assert probe.blocked == 1
            probe.gate.set()
            await eventually(lambda: len(probe.events) == 300, "all 300 events")
        assert [len(batch) for batch in probe.batches] == [probe.held, 300 - probe.held]
        assert [e.value for e in probe.events] == [float(i) for i in range(300)]

    asyncio.run(scenario())


def test_qos0_beyond_max_pending_is_dropped_and_counted(broker: LocalBroker) -> None:
    async def scenario() -> None:
        probe = Probe()
        probe.gate = asyncio.Event()
        config = driver_config(
            broker.port,
            [{"topic": "n/+", "qos": 0, "parse": {"format": "raw"}}],
            max_pending=10,
        )
        async with running(config, probe) as driver:
            await publish(broker.port, [(f"n/{i}", str(i).encode(), 0, False) for i in range(50)])
            await eventually(
                lambda: probe.held + driver.waiting + driver.dropped == 50, "50 arrivals"
            )
            # The first burst (at most max_pending) is held in emit, 10 more wait.
            assert 1 <= probe.held <= 10 and probe.blocked == 1
            assert (driver.waiting, driver.dropped) == (10, 40 - probe.held)
            assert driver.health.errors == 1  # one overflow, one error
            assert driver.health.last_error is not None
            assert "dropping QoS 0" in driver.health.last_error
            probe.gate.set()
            await eventually(lambda: len(probe.events) == probe.held + 10, "the kept messages")
        kept = [int(e.value) for e in probe.events if isinstance(e.value, str)]
        assert kept == list(range(probe.held + 10))  # the oldest are kept, the newest dropped

    asyncio.run(scenario())


def test_a_backlog_larger_than_max_pending_drains_without_drops(tmp_path: Path) -> None:
    """A resumed session's queue floods in before the SUBACK; it must flow, not pile up."""
    queueing = LocalBroker(tmp_path / "broker", extra_config="queue_qos0_messages true")
    queueing.start()

    async def scenario() -> None:
        config = driver_config(
            queueing.port, [{"topic": "n/+", "qos": 0, "parse": {"format": "raw"}}],
            max_pending=10,
        )
        async with running(config, Probe()):
            pass
        await publish(queueing.port, [(f"n/{i}", str(i).encode(), 0, False) for i in range(500)])
        probe = Probe()
        async with running(config, probe) as driver:
            await publish(queueing.port, [q1("n/marker", "end")])
            await eventually(lambda: len(probe.events) == 501, "the backlog and the marker")
            assert driver.dropped == 0
        assert [e.value for e in probe.events] == [*map(str, range(500)), "end"]
        assert max(len(batch) for batch in probe.batches) > 1  # read in bursts

    try:
        asyncio.run(scenario())
    finally:
        queueing.kill()


# --- sessions, restarts ---------------------------------------------------------------

SENSOR: list[dict[str, Any]] = [{"topic": "tele/+/SENSOR", "source": "{topic[1]}", "qos": 1,
           "parse": {"format": "json", "fields": {"t": {}}}}]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
@pytest.mark.parametrize("broker_keeps_sessions", [True, False])
def test_subscription_works_again_after_a_broker_restart(
    tmp_path: Path, protocol: str, broker_keeps_sessions: bool
) -> None:
    device_broker = LocalBroker(tmp_path / "broker", persistent=broker_keeps_sessions)
    device_broker.start()

    async def scenario() -> None:
        probe = Probe()
        config = driver_config(device_broker.port, SENSOR, protocol=protocol)
        async with running(config, probe) as driver:
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
        config = driver_config(
            broker.port, SENSOR, protocol=protocol, persistent_session=persistent
        )
        async with running(config, Probe()):
            pass  # subscribed once, then stopped: the gateway restarts
        await publish(broker.port, [q1(f"tele/d{i}/SENSOR", f'{{"t": {i}}}') for i in range(3)])
        probe = Probe()
        async with running(config, probe):
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
        config = driver_config(broker.port, SENSOR)
        stuck = Probe()
        stuck.gate = asyncio.Event()
        driver = MqttDriver(config, DriverContext("gw", stuck.reject))
        task = asyncio.create_task(driver.run(stuck.emit))
        await eventually(lambda: driver.health.state is DriverState.RUNNING, "subscribed")
        await publish(broker.port, [q1("tele/a/SENSOR", '{"t": 1}')])
        await eventually(lambda: stuck.blocked == 1, "the message held in emit")
        task.cancel()  # the "crash": emit never returned, so nothing was acknowledged
        with contextlib.suppress(asyncio.CancelledError):
            await task
        probe = Probe()
        async with running(config, probe):
            await eventually(lambda: len(probe.events) == 1, "the message again")
        assert probe.triples() == [("a", "t", 1.0)]

    asyncio.run(scenario())


def test_topics_left_in_an_old_session_are_rejected_as_unmatched(broker: LocalBroker) -> None:
    async def scenario() -> None:
        old = driver_config(broker.port, [{"topic": "old/+", "parse": {"format": "raw"}}])
        async with running(old, Probe()):
            pass
        new = driver_config(broker.port, [{"topic": "new/+", "parse": {"format": "raw"}}])
        probe = Probe()
        async with running(new, probe):
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
        config = driver_config(
            secured.port, SENSOR, username="tidegate", password_env="LOCAL_BROKER_PW"
        )
        probe = Probe()
        async with running(config, probe):
            await publish(
                secured.port, [q1("tele/a/SENSOR", '{"t": 1}')],
                username="tidegate", password=password,
            )
            await eventually(lambda: len(probe.events) == 1, "an event")
        monkeypatch.setenv("LOCAL_BROKER_PW", password + "-wrong")
        driver = MqttDriver(config, DriverContext("gw", probe.reject))
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
    reconnect_min: 50ms
    reconnect_max: 500ms
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


# --- config and topic templates -------------------------------------------------------


def test_module_docstring_yaml_loads_through_the_config_loader() -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", mqtt_driver.__doc__ or "", re.S)
    config = load_config_text(block, "mqtt.py docstring")
    (driver,) = config.drivers
    assert isinstance(driver, MqttInputConfig)
    assert [s.topic for s in driver.subscriptions] == [
        "tele/+/SENSOR", "zigbee2mqtt/+", "home/+/+", "meters/+/raw"
    ]
    assert driver.persistent_session and driver.effective_port == 1883
    assert mqtt_driver.DRIVER is MqttDriver


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"subscriptions": [{"topic": "a/#/b", "parse": {"format": "raw"}}]}, "last one"),
        ({"subscriptions": [{"topic": "a/b+", "parse": {"format": "raw"}}]}, "whole level"),
        ({"subscriptions": [{"topic": "a/+", "source": "{topic[2]}",
                             "parse": {"format": "raw"}}]}, r"have 2 levels"),
        ({"subscriptions": [{"topic": "a/+", "source": "{field}",
                             "parse": {"format": "raw"}}]}, "for `name`"),
        ({"subscriptions": [{"topic": "a/+", "name": "{topic[x]}",
                             "parse": {"format": "raw"}}]}, "unknown placeholder"),
        ({"subscriptions": [{"topic": "a/+", "parse": {"format": "raw"}},
                            {"topic": "a/+", "parse": {"format": "raw"}}]}, "listed twice"),
        ({"password_env": "X"}, "needs a `username`"),
        ({"reconnect_min": "10s", "reconnect_max": "1s"}, "must not exceed"),
        ({"subscriptions": []}, "at least 1"),
        ({"hots": "x"}, "Extra inputs"),
    ],
)
def test_bad_config_is_refused(change: dict[str, Any], message: str) -> None:
    base = {"name": "m", "subscriptions": [{"topic": "a/+", "parse": {"format": "raw"}}]}
    with pytest.raises(ValueError, match=message):
        MqttInputConfig.model_validate({**base, **change})


def test_template_levels_beyond_a_hash_are_checked_per_message() -> None:
    template = TopicTemplate("{topic[3]}", driver="d", filter_levels=["a", "#"],
                             allow_field=False)
    assert template.render(["a", "b", "c", "d"], "a/b/c/d") == "d"
    with pytest.raises(TopicError, match="have 2 levels"):
        TopicTemplate("{topic[-3]}", driver="d", filter_levels=["a", "+"], allow_field=False)


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [("kitchen", "kitchen"), ("Living Room", "Living_Room"), ("_x/y#z", "x_y_z"),
     ("--", None), ("é", None), ("a" * 80, "a" * 64)],
)
def test_clean_name(text: str, cleaned: str | None) -> None:
    assert clean_name(text) == cleaned


_level = st.sampled_from(["a", "b", "$s", "", "c d"])


@given(
    st.lists(st.sampled_from(["a", "b", "+", "$s", ""]), min_size=1, max_size=4),
    st.booleans(),
    st.lists(_level, min_size=1, max_size=5),
)
def test_filter_matching_agrees_with_paho(
    filter_levels: list[str], hash_tail: bool, topic_levels: list[str]
) -> None:
    levels = [*filter_levels, "#"] if hash_tail else filter_levels
    topic_filter, topic = "/".join(levels), "/".join(topic_levels)
    assert filter_matches(levels, topic_levels) == paho.topic_matches_sub(topic_filter, topic)
