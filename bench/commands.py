"""What a command costs: a signed ``ping`` from a paho "cloud" client through a local
Mosquitto (MQTT 5, response topic) to a running gateway and back, one at a time
(round trip: publish to the ``done`` result, p50/p99), then a burst of them at once
(in bursts of 50: commands answered per second, and the CPU per command: every one is parsed,
its signature checked, written to the audit table twice and answered twice).
Figures only, nothing asserted.

Run: ``./dev bench commands [--count N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker
from tidegate.pipeline import Gateway

KEY = "bench key"
BATCH = 50
"""Pings sent at once (the gateway takes at most 64 in hand; more are dropped)."""
BASE = "tidegate/bench/cmd"


class Cloud:
    """Sends signed pings and notes when each one's final result arrives."""

    def __init__(self, port: int) -> None:
        self.done: dict[str, float] = {}
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        client.max_inflight_messages_set(1000)
        subscribed = threading.Event()
        client.on_message = self._on_message
        client.on_subscribe = lambda *a: subscribed.set()
        client.connect("127.0.0.1", port)
        # Without it, Nagle holds each ping behind the PUBACK of the last result until
        # the broker's delayed ACK (40 ms): the client's wait, not the gateway's.
        sock = client.socket()
        assert isinstance(sock, socket.socket)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe(f"{BASE}/result/#", qos=1)
        client.loop_start()
        subscribed.wait(10)
        self._client = client

    def _on_message(self, c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        result = json.loads(msg.payload)
        if result["status"] != "accepted":
            with self._arrived:
                self.done[result["id"]] = time.perf_counter()
                self._arrived.notify_all()

    def send(self) -> tuple[str, float]:
        ident = uuid.uuid4().hex
        doc: dict[str, Any] = {"id": ident, "args": {}, "ts": time.time()}
        body = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        doc["sig"] = hmac.new(KEY.encode(), f"ping\n{body}".encode(), hashlib.sha256).hexdigest()
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = f"{BASE}/result/{ident}"
        sent = time.perf_counter()
        self._client.publish(f"{BASE}/ping", json.dumps(doc), qos=1, properties=props)
        return ident, sent

    def wait(self, idents: list[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not all(i in self.done for i in idents):
                if not self._arrived.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("results missing")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def _run(port: int, data: Path, count: int) -> dict[str, float]:
    (data / "key").write_text(KEY)
    gateway = Gateway(
        load_config_text(
            f"""
gateway: {{id: bench, data_dir: {data}}}
mqtt: {{host: 127.0.0.1, port: {port}, protocol: "5"}}
drivers: [{{name: s, type: sim, signals: [{{name: n, kind: counter, interval: 1s}}]}}]
commands:
  key_file: {data}/key
  allow: [{{name: ping}}]
"""
        )
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(gateway.run(stop)))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        publisher = gateway.publisher
        # Connected, and the command subscription (sent after the CONNACK) answered.
        while not (
            publisher is not None
            and publisher.status.connected
            and publisher._client is not None
            and not publisher._client.subscribing
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the gateway did not connect")
            time.sleep(0.05)
        cloud = Cloud(port)
        trips = []
        for _ in range(count):
            ident, sent = cloud.send()
            cloud.wait([ident])
            trips.append((cloud.done[ident] - sent) * 1000)
        cpu0, start = time.process_time(), time.perf_counter()
        for _ in range(0, count, BATCH):  # the gateway takes at most 64 at once
            burst = [cloud.send()[0] for _ in range(BATCH)]
            cloud.wait(burst)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        cloud.close()
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
    trips.sort()
    return {
        "p50": statistics.median(trips),
        "p99": trips[min(len(trips) - 1, int(len(trips) * 0.99))],
        "rate": _bursts(count) / elapsed,
        "cpu": cpu / _bursts(count) * 1e6,
    }


def _bursts(count: int) -> int:
    return -(-count // BATCH) * BATCH


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="./dev bench commands")
    parser.add_argument("--count", type=int, default=300, help="Pings each way (default 300).")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, LocalBroker(Path(tmp) / "broker") as broker:
        data = Path(tmp) / "data"
        data.mkdir()
        figures = _run(broker.port, data, args.count)
    print(f"{args.count} signed pings, MQTT 5, through a local Mosquitto")
    print("measure                                   value")
    print(f"round trip, one at a time, p50       {figures['p50']:8.1f} ms")
    print(f"round trip, one at a time, p99       {figures['p99']:8.1f} ms")
    print(f"bursts of {BATCH}: commands answered   {figures['rate']:8.0f} /s")
    print(f"bursts of {BATCH}: CPU per command      {figures['cpu']:8.0f} µs  (with the client's)")
