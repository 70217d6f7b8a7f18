"""``format: homeassistant``: discovery configs for every signal, their value templates
rendered by Jinja (the template engine Home Assistant renders them with), and the
configs retained at a real Mosquitto beside the events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import Subscriber, delivered, run_in_process, wait_until
from tidegate.config.loader import load_config_text
from tidegate.config.schema import MqttSection
from tidegate.demo.local_broker import LocalBroker
from tidegate.errors import ConfigError
from tidegate.event import Event, new_event
from tidegate.outbox import Row
from tidegate.payload import encode_event
from tidegate.pipeline import Gateway
from tidegate.uplink.formats import FormatContext, FormatError, format_named
from tidegate.uplink.window import SendWindow

STATUS = "tidegate/barn/status"


def announce(event: Event, topic: str = "t") -> list[tuple[str, dict[str, Any]]]:
    fmt = format_named("homeassistant", FormatContext(STATUS))
    return [
        (a.topic, json.loads(a.payload))
        for a in fmt.announce(encode_event(event, 1, "barn"), topic)
    ]


def state(config: dict[str, Any], event: Event) -> str:
    """What Home Assistant makes of the event's message with the config's template."""
    value_json = json.loads(encode_event(event, 1, "barn"))
    return str(jinja2.Template(config["value_template"]).render(value_json=value_json))


def test_a_temperature_is_a_sensor_of_the_gateway_device() -> None:
    event = new_event("greenhouse", "temperature", 21.5, unit="°C")
    [(topic, config)] = announce(event, "tidegate/barn/greenhouse/temperature")
    assert topic == "homeassistant/sensor/barn/greenhouse_temperature/config"
    assert config == {
        "name": "greenhouse temperature",
        "unique_id": "tidegate_barn_greenhouse_temperature",
        "state_topic": "tidegate/barn/greenhouse/temperature",
        "availability_topic": STATUS,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": config["device"],
        "origin": config["origin"],
        "value_template": "{{ value_json.value }}",
        "unit_of_measurement": "°C",
        "device_class": "temperature",
        "state_class": "measurement",
    }
    assert config["device"]["identifiers"] == ["tidegate_barn"]
    assert config["device"]["name"] == "barn"
    assert state(config, event) == "21.5"


@pytest.mark.parametrize(
    ("event", "component", "classes"),
    [
        (new_event("door", "open", True), "binary_sensor", (None, None)),
        (new_event("meter", "energy", 12.5, unit="kWh"), "sensor", ("energy", "total_increasing")),
        (new_event("room", "humidity", 41.0, unit="%"), "sensor", ("humidity", "measurement")),
        (new_event("room", "level", 41.0, unit="%"), "sensor", (None, "measurement")),
        (new_event("modem", "status", "ok"), "sensor", (None, None)),
        (new_event("s", "x", 3), "sensor", (None, "measurement")),
    ],
    ids=lambda v: v.name if isinstance(v, Event) else str(v),
)
def test_components_and_classes_follow_the_value_and_unit(
    event: Event, component: str, classes: tuple[str | None, str | None]
) -> None:
    [(topic, config)] = announce(event)
    assert topic.split("/")[1] == component
    assert (config.get("device_class"), config.get("state_class")) == classes
    value = event.value
    expected = ("ON" if value else "OFF") if isinstance(value, bool) else str(value)
    assert state(config, event) == expected


def test_a_structured_value_is_one_entity_per_key() -> None:
    event = new_event("bme", "climate", {"t": 20.25, "ok": False})
    configs = dict(announce(event))
    assert set(configs) == {
        "homeassistant/sensor/barn/bme_climate_t/config",
        "homeassistant/binary_sensor/barn/bme_climate_ok/config",
    }
    assert state(configs["homeassistant/sensor/barn/bme_climate_t/config"], event) == "20.25"
    assert state(configs["homeassistant/binary_sensor/barn/bme_climate_ok/config"], event) == "OFF"


def test_each_signal_is_announced_once_and_again_on_every_connection() -> None:
    fmt = format_named("homeassistant", FormatContext(STATUS))
    a = encode_event(new_event("s", "a", 1.0), 1, "barn")
    b = encode_event(new_event("s", "b", 1.0), 2, "barn")
    assert len(fmt.announce(a, "t/a")) == 1
    assert fmt.announce(a, "t/a") == []
    assert len(fmt.announce(b, "t/b")) == 1
    assert [x.topic for x in fmt.reannounce()] == [
        "homeassistant/sensor/barn/s_a/config",
        "homeassistant/sensor/barn/s_b/config",
    ]
    with pytest.raises(FormatError):
        fmt.announce(b"[1, 2]", "t/c")

    window = SendWindow(
        MqttSection.model_validate({"host": "h", "format": "homeassistant"}), STATUS
    )
    rows = [Row(1, "t/a", 1, False, a, 1), Row(2, "t/a", 1, False, a, 1)]
    messages, refused = window.pack(rows, room=5, max_bytes=1 << 20)
    assert [m.payloads for m in messages] == [[a], [a]] and not refused  # events as stored
    assert len(window.announcements) == 1
    window.announcements = []  # as sent
    window.connected(100)  # a new connection: everything again
    assert [x.topic for x in window.announcements] == ["homeassistant/sensor/barn/s_a/config"]


@pytest.mark.parametrize(
    ("mqtt", "problem"),
    [
        ("events_per_message: 10", "format homeassistant sends one event per message"),
        ("discovery_prefix: 'ha/#'", "discovery_prefix is a topic, not a filter"),
        ("topic_prefix: homeassistant", "would be Home Assistant's own birth topic"),
    ],
)
def test_what_cannot_work_is_refused_at_load(mqtt: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config_text(
            f"mqtt: {{host: h, format: homeassistant, {mqtt}}}\n"
            "drivers: [{name: a, type: sim, signals: [{name: t, kind: sine, rate: 1}]}]"
        )


def test_configs_are_retained_beside_the_events(tmp_path: Path, broker: LocalBroker) -> None:
    text = f"""
gateway: {{id: barn, data_dir: {tmp_path}}}
mqtt: {{host: {broker.host}, port: {broker.port}, format: homeassistant, discovery_prefix: ha}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: s1
    type: sim
    signals: [{{name: temperature, kind: sine, rate: 2000, count: 100, unit: "°C"}},
              {{name: pulses, kind: counter, rate: 2000, count: 100}}]
"""
    live = Subscriber(broker.host, broker.port, "tidegate/barn/s1/#").start()
    run_in_process(text, delivered(200))
    wait_until(lambda: len(live.snapshot()) >= 200, 10, "the events")
    live.stop()
    # A Home Assistant that starts later finds the configs: they are retained.
    later = Subscriber(broker.host, broker.port, "ha/#").start()
    wait_until(lambda: len(later.snapshot()) >= 2, 10, "the retained configs")
    later.stop()
    configs = {m.topic: json.loads(m.payload) for m in later.snapshot()}
    assert set(configs) == {
        "ha/sensor/barn/s1_temperature/config",
        "ha/sensor/barn/s1_pulses/config",
    }
    assert all(m.retain for m in later.snapshot())
    by_topic = {m.topic: json.loads(m.payload) for m in live.snapshot()}
    for config in configs.values():
        event = by_topic[config["state_topic"]]  # the state topic is where the events go
        assert event["name"] == config["name"].split(" ")[1]
    temperature = configs["ha/sensor/barn/s1_temperature/config"]
    assert temperature["device_class"] == "temperature"
    assert temperature["availability_topic"] == "tidegate/barn/status"


def test_home_assistants_birth_message_brings_the_configs_again(
    tmp_path: Path, broker: LocalBroker
) -> None:
    text = f"""
gateway: {{id: barn, data_dir: {tmp_path}}}
mqtt: {{host: {broker.host}, port: {broker.port}, format: homeassistant}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: s1
    type: sim
    signals: [{{name: temperature, kind: sine, rate: 100, count: 10, unit: "°C"}}]
"""
    configs = Subscriber(broker.host, broker.port, "homeassistant/sensor/#").start()
    home_assistant = paho.Client(CallbackAPIVersion.VERSION2, client_id="home-assistant")
    home_assistant.connect(broker.host, broker.port)
    home_assistant.loop_start()
    born: list[bool] = []

    def again(gateway: Gateway) -> bool:
        # Once the config came (with the first event), Home Assistant (re)starts.
        if not born and len(configs.snapshot()) == 1:
            home_assistant.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
            born.append(True)
        return len(configs.snapshot()) >= 2

    try:
        gateway = run_in_process(text, again)
        assert gateway.publisher is not None
        assert gateway.publisher.status.connects == 1  # heard, not a reconnect's re-send
    finally:
        home_assistant.disconnect()
        home_assistant.loop_stop()
        configs.stop()
    first, second = configs.snapshot()[:2]
    assert first.topic == second.topic == "homeassistant/sensor/barn/s1_temperature/config"
    assert first.payload == second.payload
