"""Test helpers for commands in a platform's own convention: a gateway with a simulated
GPIO output (the vent) and a simulated Modbus device (the boiler's setpoint), the
commands that reach them, a "platform" client that publishes as ThingsBoard, Home
Assistant or a Sparkplug host would and records what the gateway says, and the audit
read back through `tidegate buffer commands`."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import Received, tidegate, wait_until
from tidegate.drivers.gpio.output import GpioOutputDriver
from tidegate.drivers.gpio.sim_backend import SimBackend
from tidegate.pipeline import Gateway

VENT_LINE = 17
KEY = "correct horse battery staple"


def plant(tmp_path: Path, port: int, fmt: str, *, allow: str = "", extra: str = "") -> str:
    """A gateway ``gw`` sending in ``fmt`` that takes ``vent`` (a gpio set), ``setpoint``
    (a Modbus write within 5..30), ``flush`` (a 50 ms pulse) and ``ping`` (signed, so
    no platform may call it)."""
    (tmp_path / "cmd.key").write_text(KEY + "\n")
    return f"""
gateway: {{id: gw, data_dir: {tmp_path}}}
mqtt: {{host: 127.0.0.1, port: {port}, format: {fmt}}}
drivers:
  - {{name: vent, type: gpio, backend: sim, line: {VENT_LINE}, mode: output}}
  - name: plant
    type: modbus
    port: sim
    timeout: 200ms
    interval: 100ms
    devices:
      - name: boiler
        slave: 7
        registers:
          - {{name: setpoint, address: 1, type: u16, scale: 0.1}}
    sim:
      values: {{setpoint: 18.0}}
actions:
  - {{name: vent, type: gpio, driver: vent, do: set}}
  - {{name: flush, type: gpio, driver: vent, do: pulse, duration: 50ms}}
  - name: boiler-setpoint
    type: modbus
    driver: plant
    device: boiler
    register: setpoint
    args: {{value: {{type: number, min: 5, max: 30}}}}
commands:
  key_file: {tmp_path}/cmd.key
  allow:
    - {{name: vent, action: vent, signed: false}}
    - {{name: setpoint, action: boiler-setpoint, signed: false}}
    - {{name: flush, action: flush, signed: false}}
    - {{name: ping}}
{allow}
{extra}
"""


def vent_levels(gateway: Gateway) -> list[int]:
    """The levels the vent's simulated line was driven to, in order."""
    driver = next(d for d in gateway.drivers if isinstance(d, GpioOutputDriver))
    backend = driver.backend
    assert isinstance(backend, SimBackend)
    return [level for _, level in backend.chip.history(VENT_LINE)]


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    """The command audit, oldest first, as `tidegate buffer commands --jsonl` exports it."""
    listed = tidegate("buffer", "commands", "--db", str(tmp_path / "outbox.db"), "--jsonl")
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


@dataclass
class Platform:
    """A client of the broker playing the platform: publishes commands, records
    everything on ``filters``."""

    port: int
    filters: list[str]
    messages: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: paho.Client | None = None

    def __enter__(self) -> Platform:
        client = paho.Client(CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()

        def on_message(c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
            with self._lock:
                self.messages.append(Received(msg.topic, bytes(msg.payload), msg.retain, msg.qos))

        client.on_message = on_message
        client.on_subscribe = lambda *a: subscribed.set()
        client.connect("127.0.0.1", self.port)
        client.subscribe([(f, 1) for f in self.filters])
        client.loop_start()
        self._client = client
        wait_until(subscribed.is_set, 10, "the platform's subscription")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._client is not None
        self._client.loop_stop()
        self._client.disconnect()

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        assert self._client is not None
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, topic: str, what: str, match: Any = None, timeout: float = 10) -> Received:
        """The first message on ``topic`` (for which ``match`` holds), waiting for it."""

        def found() -> Received | None:
            return next((m for m in self.on(topic) if match is None or match(m)), None)

        wait_until(lambda: found() is not None, timeout, what)
        received = found()
        assert received is not None
        return received
