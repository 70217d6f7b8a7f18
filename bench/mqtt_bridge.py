"""Device broker → ``mqtt`` driver → rules → outbox → cloud broker: events/s.

The comparison with other gateways' MQTT bridges (Node-RED's mqtt-in → function →
mqtt-out, ThingsBoard's MQTT connector): one device message in, one event out.

Each scenario first fills a persistent session on the device broker with N messages
(Tasmota-style JSON, one field taken), while nothing reads it, so no load generator
competes for the 2 cores during the measurement. Then a fresh child process resumes
that session and drains it:

- ``driver``: the ``mqtt`` driver alone, emitting into a counter: its ceiling;
- ``gateway 1/msg``: the whole gateway (outbox commits, publisher), one event per
  cloud message, counted when the cloud broker acknowledged it (PUBACK);
- ``gateway 100/msg``: the same with ``events_per_message: 100``.

Input QoS 0 and 1 (the session's subscription QoS); publishing to the cloud is QoS 1.
At QoS 0 the driver drops what waits beyond ``max_pending`` while the pipeline is busy
(by design, and counted): a drain at the device broker's full speed overruns the
gateway's pipeline, so those rows end when every message was delivered or dropped,
and the table says how many were dropped.
CPU is the child process's (all threads) per message; the brokers run outside it.

Run: ``./dev bench mqtt_bridge [--messages N] [--protocol 3.1.1|5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker
from tidegate.driver import DriverContext
from tidegate.drivers.mqtt.driver import MqttDriver, MqttInputConfig
from tidegate.event import Event
from tidegate.mqtt.paho_bridge import AsyncioPaho
from tidegate.pipeline import Gateway

TOPIC_FILTER = "tele/+/SENSOR"
PAYLOAD = (
    b'{"Time":"2026-03-01T12:00:00","AM2301":{"Temperature":21.5,"Humidity":40.2},'
    b'"TempUnit":"C"}'
)
DEVICES = 20
LOADER_WINDOW = 200
"""QoS 1 messages the loader keeps unacknowledged (paho slows down with many more)."""
COMPARISON = (
    "for comparison (issue 3, measured on this machine, not by this bench): Node-RED "
    "passes about 43k messages/s from mqtt-in through a function node to mqtt-out at "
    "QoS 0, and 21k/s at QoS 1"
)


def _driver_yaml(device_port: int, client_id: str, qos: int, protocol: str) -> str:
    return f"""
  - name: site
    type: mqtt
    port: {device_port}
    protocol: "{protocol}"
    client_id: {client_id}
    subscriptions:
      - topic: "{TOPIC_FILTER}"
        qos: {qos}
        source: "{{topic[1]}}"
        parse:
          format: json
          fields: {{AM2301.Temperature: {{name: temperature, unit: "°C"}}}}
"""


# --- filling the session (in the parent) ---------------------------------------------


async def _connected(client: paho.Client, port: int, **connect: Any) -> AsyncioPaho:
    loop = asyncio.get_running_loop()
    bridge = AsyncioPaho(client, loop)
    connack: asyncio.Future[None] = loop.create_future()
    client.on_connect = lambda *_: None if connack.done() else connack.set_result(None)
    client.connect_async("127.0.0.1", port, **connect)
    await bridge.connect()
    await asyncio.wait_for(connack, 10)
    return bridge


async def _create_session(port: int, client_id: str, qos: int, protocol: str) -> None:
    """Subscribe as the driver will, then leave: the broker now queues for it."""
    connect: dict[str, Any] = {}
    if protocol == "5":
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=paho.MQTTv5)
        # The driver's default session expiry; with 0 the broker would drop the session.
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 86400
        connect = {"clean_start": False, "properties": properties}
    else:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=paho.MQTTv311, clean_session=False)
    bridge = await _connected(client, port, **connect)
    suback: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    client.on_subscribe = lambda *_: None if suback.done() else suback.set_result(None)
    client.subscribe(TOPIC_FILTER, qos=qos)
    await asyncio.wait_for(suback, 10)
    client.disconnect()
    client.loop_write()
    bridge.close()


async def _fill(port: int, qos: int, messages: int) -> None:
    """Publish ``messages`` device messages; return once the broker has them all."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(LOADER_WINDOW)
    client.max_queued_messages_set(0)
    bridge = await _connected(client, port)
    room = asyncio.Event()
    inflight = 0

    def on_publish(*_: object) -> None:
        nonlocal inflight
        inflight -= 1
        room.set()

    client.on_publish = on_publish
    for i in range(messages):
        while qos and inflight >= LOADER_WINDOW:
            room.clear()
            await room.wait()
        client.publish(f"tele/device-{i % DEVICES}/SENSOR", PAYLOAD, qos=qos)
        inflight += qos
        if not qos and i % 100 == 0:
            await asyncio.sleep(0)  # let the writer drain the socket
    # A QoS 1 fence on another topic: once it is acknowledged, the broker has processed
    # everything sent before it on this connection.
    inflight += 1
    client.publish("bench/fence", b"", qos=1)
    while inflight > 0:
        room.clear()
        await room.wait()
    client.disconnect()
    client.loop_write()
    bridge.close()


# --- the measured children ----------------------------------------------------------


async def _child_driver(device_port: int, client_id: str, qos: int, protocol: str,
                        messages: int) -> dict[str, float]:
    text = "drivers:" + _driver_yaml(device_port, client_id, qos, protocol)
    (config,) = load_config_text(text, "bench").drivers
    assert isinstance(config, MqttInputConfig)
    received = 0
    done = asyncio.Event()

    async def emit(batch: Sequence[Event]) -> None:
        nonlocal received
        received += len(batch)
        if received >= messages:
            done.set()

    rejected: list[str] = []
    driver = MqttDriver(config, DriverContext("bench", lambda raw, why: rejected.append(why)))
    cpu0, t0 = time.process_time(), time.perf_counter()
    task = asyncio.create_task(driver.run(emit))
    await asyncio.wait_for(done.wait(), 600)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if rejected:
        raise RuntimeError(f"{len(rejected)} rejects, e.g. {rejected[0]}")
    return {"messages": messages, "seconds": elapsed, "cpu": cpu}


async def _child_gateway(
    device_port: int, cloud_port: int, client_id: str, *, qos: int, protocol: str,
    per_message: int, messages: int, data_dir: str,
) -> dict[str, float]:
    config = load_config_text(
        f"""
gateway: {{id: bench, data_dir: {data_dir}}}
mqtt: {{host: 127.0.0.1, port: {cloud_port}, events_per_message: {per_message}}}
buffer: {{commit_interval: 50ms, commit_max_events: 5000}}
drivers:{_driver_yaml(device_port, client_id, qos, protocol)}
""",
        "bench",
    )
    gateway = Gateway(config)
    stop = asyncio.Event()
    cpu0, t0 = time.process_time(), time.perf_counter()
    task = asyncio.create_task(gateway.run(stop))
    publisher = gateway.publisher
    assert publisher is not None
    (driver,) = gateway.drivers
    assert isinstance(driver, MqttDriver)
    deadline = time.monotonic() + 600
    # At QoS 0 a busy pipeline drops what is beyond max_pending, by design (counted):
    # the row ends when every message was delivered or dropped, and says how many were.
    while publisher.status.events_delivered + driver.dropped < messages:
        if task.done():
            task.result()
            raise RuntimeError("the gateway stopped early")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {publisher.status.events_delivered} delivered")
        await asyncio.sleep(0.005)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stop.set()
    await task
    if gateway.stats.input_rejected:
        raise RuntimeError(f"{gateway.stats.input_rejected} messages rejected")
    return {"messages": messages, "seconds": elapsed, "cpu": cpu, "dropped": driver.dropped}


def _run_child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.mqtt_bridge", "--child", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench child failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench mqtt_bridge")
    parser.add_argument("--messages", type=int, default=50_000, help="device messages per row")
    parser.add_argument("--protocol", choices=["3.1.1", "5"], default="3.1.1",
                        help="MQTT version the driver speaks to the device broker")
    args = parser.parse_args(argv)
    n = args.messages
    rows: list[tuple[str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as workdir:
        work = Path(workdir)
        # Offline QoS 0 messages are queued only when the broker is told to.
        device = LocalBroker(work / "device", extra_config="queue_qos0_messages true")
        cloud = LocalBroker(work / "cloud")
        with device, cloud:
            for qos in (0, 1):
                for scenario, per_message in (("driver", 0), ("gateway", 1), ("gateway", 100)):
                    client_id = f"bench-{scenario}-{per_message}-{qos}"
                    asyncio.run(_create_session(device.port, client_id, qos, args.protocol))
                    asyncio.run(_fill(device.port, qos, n))
                    common = (str(device.port), client_id, str(qos), args.protocol)
                    if scenario == "driver":
                        result = _run_child("driver", *common, str(n))
                        label = "driver only"
                    else:
                        data_dir = work / f"data-{client_id}"
                        result = _run_child("gateway", *common, str(n), str(cloud.port),
                                            str(per_message), str(data_dir))
                        label = f"gateway {per_message}/msg"
                    rows.append((label, qos, result))
    print(f"device broker → mqtt driver → cloud broker; {n} messages per row "
          f"({len(PAYLOAD)} B Tasmota JSON, one field each); MQTT {args.protocol} in, "
          "QoS 1 out; drained from a persistent session")
    print("{:<17} {:>6} {:>12} {:>12} {:>9}".format(
        "path", "QoS in", "events/s", "CPU µs/msg", "dropped"))
    for label, qos, r in rows:
        delivered = r["messages"] - r.get("dropped", 0)
        print(f"{label:<17} {qos:>6} {delivered / r['seconds']:>12,.0f} "
              f"{r['cpu'] / r['messages'] * 1e6:>12.1f} {r.get('dropped', 0):>9,.0f}")
    print(COMPARISON)


def _child(argv: list[str]) -> None:
    kind, device_port, client_id, qos, protocol, messages, *rest = argv
    if kind == "driver":
        result = asyncio.run(
            _child_driver(int(device_port), client_id, int(qos), protocol, int(messages))
        )
    else:
        cloud_port, per_message, data_dir = rest
        result = asyncio.run(
            _child_gateway(
                int(device_port), int(cloud_port), client_id, qos=int(qos), protocol=protocol,
                per_message=int(per_message), messages=int(messages), data_dir=data_dir,
            )
        )
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main(sys.argv[1:])
