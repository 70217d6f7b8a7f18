"""Serial and local-broker actions through commands: a templated frame written to a
simulated serial device and its reply returned, a Tasmota-style publish on the local
broker; and the argument checks that keep bad values from the device."""

from __future__ import annotations

import json
from pathlib import Path

from tests.commands.cloud import Cloud, running
from tests.support import GatewayProcess, Subscriber, tidegate, wait_until, write_config
from tidegate.commands.service import MAX_IN_HAND
from tidegate.demo.local_broker import LocalBroker
from tidegate.ops.status import GatewayMonitor
from tidegate.ops.status_text import render_status
from tidegate.pipeline import Gateway

SERIAL = """
gateway: {{id: gw, data_dir: {data}}}
mqtt: {{host: 127.0.0.1, port: {port}}}
drivers:
  - name: boiler
    type: serial
    port: sim
    framing: {{type: line}}
    parse: {{format: kv, fields: {{T: {{}}}}}}
    sim:
      respond_to: "SET 21.5\\r\\n"
      signals: {{T: {{base: 20, amplitude: 0, noise: 0}}}}
  - name: house
    type: mqtt
    host: 127.0.0.1
    port: {port}
    subscriptions: [{{topic: "tele/+/SENSOR", parse: {{format: json, unlisted: include}}}}]
actions:
  - name: setpoint
    type: serial
    driver: boiler
    frame: "SET {{value:.1f}}\\r\\n"
    reply_timeout: 2s
    args: {{value: {{type: number, min: 5, max: 30}}}}
  - name: lamp
    type: mqtt
    driver: house
    topic: cmnd/{{device}}/POWER
    payload: "{{state}}"
    args:
      device: {{type: string, pattern: "[a-z0-9_]+"}}
      state: {{type: string, choices: ["ON", "OFF", "TOGGLE"]}}
commands:
  allow: [{{name: setpoint, action: setpoint}}, {{name: lamp, action: lamp}}]
"""


def drivers_running(gateway: Gateway) -> None:
    wait_until(
        lambda: all(str(d.health.state) == "running" for d in gateway.drivers),
        10,
        "the drivers to run",
    )


def test_a_serial_frame_is_written_and_its_reply_is_the_result(
    tmp_path: Path, broker: LocalBroker
) -> None:
    with (
        running(SERIAL.format(data=tmp_path, port=broker.port)) as gateway,
        Cloud(broker.port, "tidegate/gw/cmd") as cloud,
    ):
        drivers_running(gateway)
        done = cloud.final(cloud.send("setpoint", {"value": 21.5}))
        assert (done["status"], done["result"]) == ("done", "T=20")
        high = cloud.final(cloud.send("setpoint", {"value": 99}))
        assert (high["status"], high["reason"]) == ("refused", "bad_arguments")
        boiler = next(d for d in gateway.drivers if d.name == "boiler")
        assert boiler.health.counters["writes"] == 1  # the refused one never reached it


def test_a_local_broker_action_publishes_with_checked_arguments(
    tmp_path: Path, broker: LocalBroker
) -> None:
    seen = Subscriber("127.0.0.1", broker.port, "cmnd/#").start()
    try:
        with (
            running(SERIAL.format(data=tmp_path, port=broker.port)) as gateway,
            Cloud(broker.port, "tidegate/gw/cmd") as cloud,
        ):
            drivers_running(gateway)
            done = cloud.final(cloud.send("lamp", {"device": "kitchen", "state": "ON"}))
            assert (done["status"], done["result"]) == ("done", "ON")
            wait_until(lambda: bool(seen.messages), 10, "the Tasmota command")
            assert [(m.topic, m.payload) for m in seen.messages] == [("cmnd/kitchen/POWER", b"ON")]
            sneaky = cloud.final(cloud.send("lamp", {"device": "a/#", "state": "ON"}))
            assert (sneaky["status"], sneaky["reason"]) == ("refused", "bad_arguments")
            assert "does not match" in sneaky["message"]
            odd = cloud.final(cloud.send("lamp", {"device": "hall", "state": "DIM"}))
            assert odd["reason"] == "bad_arguments"
            assert len(seen.messages) == 1
            # Refused by the command's checks, before the action was called at all.
            assert gateway.commands is not None
            assert gateway.commands.counters.refused == {"bad_arguments": 2}
            assert gateway.actions is not None
            assert gateway.actions.counters["lamp"].done == 1
    finally:
        seen.stop()


def test_a_device_that_does_not_answer_fails_and_a_command_that_waited_past_its_expiry_is_refused(
    tmp_path: Path, broker: LocalBroker
) -> None:
    with (
        running(SERIAL.format(data=tmp_path, port=broker.port)) as gateway,
        Cloud(broker.port, "tidegate/gw/cmd") as cloud,
    ):
        drivers_running(gateway)
        # The device answers SET 21.5 only: this one waits its 2 s reply_timeout...
        slow = cloud.send("setpoint", {"value": 20})
        wait_until(lambda: bool(cloud.of(slow)), 10, "the first command accepted")
        # ...and this one, behind it, may wait 1 s at most (MQTT 5 Message Expiry).
        late = cloud.send("setpoint", {"value": 21.5}, expiry=1)
        failed = cloud.final(slow)
        assert failed["status"] == "failed"
        assert "reply" in failed["message"]
        refused = cloud.final(late)
        assert (refused["status"], refused["reason"]) == ("refused", "expired")
        boiler = next(d for d in gateway.drivers if d.name == "boiler")
        assert boiler.health.counters["writes"] == 1  # the expired one was never written


def test_a_flood_of_commands_is_bounded_and_counted(tmp_path: Path, broker: LocalBroker) -> None:
    with (
        running(SERIAL.format(data=tmp_path, port=broker.port)) as gateway,
        Cloud(broker.port, "tidegate/gw/cmd") as cloud,
    ):
        assert gateway.commands is not None
        # Each waits its turn at a device that does not answer (2 s apiece).
        for _ in range(MAX_IN_HAND + 20):
            cloud.send("setpoint", {"value": 20})
        wait_until(lambda: gateway.commands.counters.dropped == 20, 20, "the excess dropped")  # type: ignore[union-attr]
        assert gateway.commands.counters.received == MAX_IN_HAND
        assert "dropped 20 (too many at once)" in render_status(GatewayMonitor(gateway).document())


def test_a_command_cut_short_by_a_crash_is_interrupted_and_never_run_again(
    tmp_path: Path, broker: LocalBroker
) -> None:
    config = write_config(tmp_path / "gw.yaml", SERIAL.format(data=tmp_path, port=broker.port))
    first = GatewayProcess(config, tmp_path / "first.log").start()
    try:
        with Cloud(broker.port, "tidegate/gw/cmd") as cloud:
            wait_until(lambda: "connected to broker" in first.output(), 20, "the first start")
            # Slow: the device does not answer SET 20.0, so it waits its 2 s reply_timeout.
            cloud.send("setpoint", {"value": 20}, ident="cut-short")
            wait_until(lambda: bool(cloud.of("cut-short")), 20, "the command accepted")
            first.kill()  # SIGKILL, mid-command
    finally:
        first.kill()
    again = GatewayProcess(config, tmp_path / "again.log").start()
    try:
        with Cloud(broker.port, "tidegate/gw/cmd") as cloud:
            wait_until(lambda: "connected to broker" in again.output(), 20, "the restart")
            cloud.send("setpoint", {"value": 20}, ident="cut-short")
            wait_until(lambda: bool(cloud.of("cut-short")), 20, "the answer to the repeat")
            (answer,) = cloud.of("cut-short")
            assert (answer["status"], answer["repeated"]) == ("interrupted", True)
            assert "not run again" in answer["message"]
    finally:
        assert again.stop() == 0
    listed = tidegate("buffer", "commands", "--db", str(tmp_path / "outbox.db"), "--jsonl")
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["id"], row["status"]) == ("cut-short", "interrupted")
