"""Actions end to end: a rule's alarm switching a simulated GPIO output with no broker
anywhere, commands switching it through its interlocks, a Modbus write with its
argument bounds, and the events that record what was done."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.commands.cloud import Cloud, running
from tests.outbox.stored import stored_payloads
from tests.support import Subscriber, wait_until
from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker, free_port
from tidegate.drivers.gpio.output import GpioOutputDriver
from tidegate.drivers.gpio.sim_backend import SimBackend
from tidegate.errors import ConfigError
from tidegate.ops.metrics import prometheus_text
from tidegate.ops.status import GatewayMonitor
from tidegate.ops.status_text import render_status
from tidegate.pipeline import Gateway

VENT_LINE = 17


def vent_levels(gateway: Gateway) -> list[int]:
    """The levels the vent's simulated line was driven to, in order."""
    driver = next(d for d in gateway.drivers if isinstance(d, GpioOutputDriver))
    backend = driver.backend
    assert isinstance(backend, SimBackend)
    return [level for _, level in backend.chip.history(VENT_LINE)]


GREENHOUSE = """
gateway: {{id: gh, data_dir: {data}}}
mqtt: {{host: 127.0.0.1, port: {port}}}
drivers:
  - name: air
    type: sim
    signals:
      - {{name: t, kind: step, interval: 50ms, values: [20, 35], hold: 300ms}}
  - name: vent
    type: gpio
    backend: sim
    line: {line}
    mode: output
    interlock: {interlock}
actions:
  - {{name: vent, type: gpio, driver: vent, do: set}}
rules:
  - name: hot
    match: {{source: air, name: t}}
    alarm: {{above: 30, clear_below: 25}}
  - name: open-vent
    from: [hot]
    match: {{name: t_alarm}}
    action: {{run: vent, args: {{state: "value == 'raised'"}}}}
{extra}
"""


def test_an_alarm_opens_and_closes_the_vent_with_no_broker_at_all(tmp_path: Path) -> None:
    text = GREENHOUSE.format(
        data=tmp_path, port=free_port(), line=VENT_LINE, interlock="{}", extra=""
    )
    with running(text, connected=False) as gateway:
        # initial off, then on at each raise and off at each clear: twice round.
        wait_until(lambda: vent_levels(gateway)[:5] == [0, 1, 0, 1, 0], 20, "the vent to cycle")
        assert not any(p.status.connected for p in gateway.publishers)
        assert gateway.actions is not None
        counters = gateway.actions.counters["vent"]
        assert counters.done >= 4 and counters.failed == 0
        assert gateway.rules.stats["open-vent"].actions >= 4
    # What was done is in the outbox, waiting for the cloud: source `actions`.
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        events = [json.loads(p) for p in stored_payloads(db)]
    done = [e for e in events if e["source"] == "actions"]
    assert done and {e["name"] for e in done} == {"vent"}
    assert done[0]["value"] == "done" and done[0]["tags"]["cause"] == "rule open-vent"


def test_commands_switch_an_output_through_its_interlocks(
    tmp_path: Path, broker: LocalBroker
) -> None:
    commands = """
commands:
  allow:
    - {name: vent, action: vent}
"""
    text = GREENHOUSE.format(
        data=tmp_path, port=broker.port, line=VENT_LINE, interlock="{min_on: 1h}", extra=commands
    ).replace("action: {run: vent", "where: 'false'\n    action: {run: vent")
    seen = Subscriber("127.0.0.1", broker.port, "tidegate/gh/actions/#").start()
    try:
        with running(text) as gateway, Cloud(broker.port, "tidegate/gh/cmd") as cloud:
            on = cloud.final(cloud.send("vent", {"state": True}))
            assert (on["status"], on["result"]) == ("done", True)
            off = cloud.final(cloud.send("vent", {"state": False}))
            assert (off["status"], off["reason"]) == ("refused", "interlock")
            assert "minimum" in off["message"]
            bad = cloud.final(cloud.send("vent", {"state": "yes"}))
            assert (bad["status"], bad["reason"]) == ("refused", "bad_arguments")
            assert vent_levels(gateway) == [0, 1]
            wait_until(lambda: len(seen.messages) >= 2, 10, "the action events")
            doc = GatewayMonitor(gateway).document()
            text = render_status(doc)
            assert "  vent: gpio set vent · done 1 · failed 0 · refused 1 interlock" in text
            metrics = prometheus_text(doc)
            assert 'tidegate_actions_total{action="vent",outcome="done"} 1' in metrics
            assert (
                'tidegate_actions_total{action="vent",outcome="refused",reason="interlock"} 1'
                in metrics
            )
    finally:
        seen.stop()
    events = [json.loads(m.payload) for m in seen.messages]
    assert [e["value"] for e in events] == ["done", "refused"]
    assert events[1]["tags"]["reason"] == "interlock"


MODBUS = """
gateway: {{id: gw, data_dir: {data}}}
mqtt: {{host: 127.0.0.1, port: {port}}}
drivers:
  - name: plant
    type: modbus
    port: sim
    timeout: 200ms
    interval: 100ms
    devices:
      - name: boiler
        slave: 7
        registers:
          - {{name: temperature, table: input, address: 0, type: i16, scale: 0.1}}
          - {{name: setpoint, address: 1, type: u16, scale: 0.1}}
    sim:
      values: {{temperature: 21.0, setpoint: 18.0}}
actions:
  - name: boiler-setpoint
    type: modbus
    driver: plant
    device: boiler
    register: setpoint
    args: {{value: {{type: number, min: 5, max: 30}}}}
commands:
  allow: [{{name: setpoint, action: boiler-setpoint}}]
"""


def test_a_command_writes_a_modbus_register_within_its_bounds(
    tmp_path: Path, broker: LocalBroker
) -> None:
    text = MODBUS.format(data=tmp_path, port=broker.port)
    readings = Subscriber("127.0.0.1", broker.port, "tidegate/gw/plant/boiler.setpoint").start()
    try:
        with running(text), Cloud(broker.port, "tidegate/gw/cmd") as cloud:
            done = cloud.final(cloud.send("setpoint", {"value": 22.5}))
            assert (done["status"], done["result"]) == ("done", 22.5)
            high = cloud.final(cloud.send("setpoint", {"value": 31}))
            assert (high["status"], high["reason"]) == ("refused", "bad_arguments")
            assert "maximum 30" in high["message"]
            # The device holds it: the next polls read it back.
            wait_until(
                lambda: any(json.loads(m.payload)["value"] == 22.5 for m in readings.messages),
                10,
                "the new setpoint read back",
            )
    finally:
        readings.stop()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("driver: vent, do: set", "driver: air, do: set"), "is a sim driver"),
        (("driver: vent, do: set", "driver: nowhere, do: set"), "no driver named 'nowhere'"),
        (("run: vent", "run: fan"), "no action 'fan'"),
        (("{state: \"value == 'raised'\"}", "{speed: 3}"), "takes no 'speed'"),
        (("do: set}", "do: set, state: true, duration: 1s}"), "`duration` is for do: pulse"),
    ],
)
def test_config_errors_name_the_place(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = GREENHOUSE.format(data=tmp_path, port=1883, line=VENT_LINE, interlock="{}", extra="")
    assert change[0] in text
    with pytest.raises(ConfigError) as caught:
        load_config_text(text.replace(*change))
    assert message in str(caught.value)
    assert str(caught.value).startswith("<config>:")
