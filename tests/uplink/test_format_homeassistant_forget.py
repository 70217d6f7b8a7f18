"""``format: homeassistant``: entities of signals that vanished are removed (an empty
retained config), those seen in this run and those found retained on the broker from an
earlier one; with a clock of the test's, then against a real Mosquitto."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import Subscriber, run_in_process, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.event import new_event
from tidegate.payload import encode_event
from tidegate.pipeline import Gateway
from tidegate.uplink.formats import Announcement, FormatContext, format_named
from tidegate.uplink.formats.homeassistant import HomeAssistant

DAY = 86400.0
OLD = "homeassistant/sensor/barn/s1_humidity/config"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def forgetting(clock: Clock, forget_after: float | None = DAY) -> HomeAssistant:
    fmt = format_named(
        "homeassistant",
        FormatContext("s", gateway="barn", discovery_forget_after=forget_after),
    )
    assert isinstance(fmt, HomeAssistant)
    fmt.clock = clock
    return fmt


def seen(fmt: HomeAssistant, name: str) -> list[Announcement]:
    return fmt.announce(encode_event(new_event("s1", name, 1.0), 1, "barn"), f"t/{name}")


def removals(announcements: list[Announcement]) -> list[str]:
    return [a.topic for a in announcements if a.payload == b"" and a.retain]


def test_a_signal_unseen_for_the_forget_time_has_its_entities_removed() -> None:
    clock = Clock()
    fmt = forgetting(clock)
    (config,) = seen(fmt, "a")
    seen(fmt, "b")
    clock.now += DAY / 2
    assert removals(seen(fmt, "b")) == []  # half a day: kept
    clock.now += DAY / 2 + 1
    assert removals(seen(fmt, "b")) == [config.topic]  # a's day is up; b was seen
    # Gone from what every connection sends again, and announced anew if it returns.
    assert config.topic not in {a.topic for a in fmt.reannounce()}
    assert [a.topic for a in seen(fmt, "a")] == [config.topic]


def test_configs_found_retained_from_an_earlier_run_are_removed_unless_seen() -> None:
    clock = Clock()
    fmt = forgetting(clock)
    assert "homeassistant/+/barn/+/config" in fmt.listens()
    (kept,) = seen(fmt, "a")
    assert not fmt.heard(OLD, b'{"name": "s1 humidity"}')  # an entity of before
    assert not fmt.heard(kept.topic, kept.payload)  # our own, heard back
    fmt.heard("homeassistant/sensor/barn/s1_b/config", b"{}")  # before b shows up
    clock.now += DAY / 2
    seen(fmt, "b")
    clock.now += DAY / 2 + 1
    assert removals(seen(fmt, "a")) == [OLD]
    assert fmt.heard("homeassistant/status", b"online")


def test_forgetting_can_be_turned_off() -> None:
    clock = Clock()
    fmt = forgetting(clock, None)
    seen(fmt, "a")
    fmt.heard(OLD, b"{}")
    clock.now += 365 * DAY
    assert removals(seen(fmt, "b")) == []
    assert removals(fmt.reannounce()) == []


def test_an_entity_left_on_the_broker_is_removed_by_a_real_gateway(
    tmp_path: Path, broker: LocalBroker
) -> None:
    # An earlier run's signal, renamed since: its config is still retained.
    earlier = paho.Client(CallbackAPIVersion.VERSION2)
    earlier.connect(broker.host, broker.port)
    earlier.loop_start()
    earlier.publish(OLD, b'{"name": "s1 humidity"}', qos=1, retain=True).wait_for_publish(5)
    earlier.disconnect()
    earlier.loop_stop()
    configs = Subscriber(broker.host, broker.port, "homeassistant/sensor/#").start()
    text = f"""
gateway: {{id: barn, data_dir: {tmp_path}}}
mqtt:
  host: {broker.host}
  port: {broker.port}
  format: homeassistant
  discovery_forget_after: 0.3s
buffer: {{commit_interval: 20ms}}
drivers:
  - name: s1
    type: sim
    signals: [{{name: temperature, kind: sine, rate: 50, unit: "°C"}}]
"""

    def removed(gateway: Gateway) -> bool:
        return any(m.topic == OLD and m.payload == b"" for m in configs.snapshot())

    try:
        run_in_process(text, removed)
    finally:
        configs.stop()
    # The signal that kept reporting kept its entity; a fresh look finds only it.
    later = Subscriber(broker.host, broker.port, "homeassistant/sensor/#").start()
    wait_until(lambda: bool(later.snapshot()), 10, "the retained configs")
    later.stop()
    assert {m.topic for m in later.snapshot()} == {
        "homeassistant/sensor/barn/s1_temperature/config"
    }
