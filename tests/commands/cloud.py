"""Test helpers: a gateway running on a thread of its own, and a "cloud" client that
sends commands to it through a real broker and records what it answers.

The cloud signs commands with its own HMAC code (the documented recipe, not the
gateway's function), so a change of the signed bytes fails the tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support import wait_until
from tidegate.config.loader import load_config, load_config_text
from tidegate.pipeline import Gateway


@contextmanager
def running(config: str | Path, *, connected: bool = True) -> Iterator[Gateway]:
    """A Gateway running on its own thread (and event loop) until the block ends; from
    a config's text, or from its file (then it reloads rules from it)."""
    if isinstance(config, Path):
        gateway = Gateway(load_config(config), config_path=config)
    else:
        gateway = Gateway(load_config_text(config))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def main() -> None:
        try:
            loop.run_until_complete(gateway.run(stop))
        except BaseException as exc:  # reported by the test, not lost on the thread
            failure.append(exc)

    thread = threading.Thread(target=main, name="gateway", daemon=True)
    thread.start()
    try:
        wait_until(lambda: gateway.ready.is_set() or bool(failure), 10, "the gateway to start")
        if connected:
            wait_until(
                lambda: all(p.status.connected for p in gateway.publishers) or bool(failure),
                10,
                "the uplinks to connect",
            )
            # The command subscription goes out right after the CONNACK.
            wait_until(
                lambda: (
                    all(
                        p._client is not None and not p._client.subscribing
                        for p in gateway.publishers
                        if p.commands is not None
                    )
                    or bool(failure)
                ),
                10,
                "the command subscriptions",
            )
        if failure:
            raise failure[0]
        yield gateway
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()
    if failure:
        raise failure[0]


def sign(key: str, name: str, doc: dict[str, Any]) -> str:
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key.encode(), f"{name}\n{body}".encode(), hashlib.sha256).hexdigest()


@dataclass
class Cloud:
    """A client of the broker that sends commands and records every result."""

    port: int
    base: str
    v5: bool = True
    results: list[dict[str, Any]] = field(default_factory=list)
    correlations: list[bytes | None] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: paho.Client | None = None

    def __enter__(self) -> Cloud:
        protocol = MQTTProtocolVersion.MQTTv5 if self.v5 else MQTTProtocolVersion.MQTTv311
        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        subscribed = threading.Event()

        def on_message(c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
            props = msg.properties
            correlation = getattr(props, "CorrelationData", None) if props else None
            with self._lock:
                self.results.append(json.loads(msg.payload))
                self.correlations.append(correlation)

        client.on_message = on_message
        client.on_subscribe = lambda *a: subscribed.set()
        client.connect("127.0.0.1", self.port)
        client.subscribe(f"{self.base}/result/#", qos=1)
        client.loop_start()
        self._client = client
        wait_until(subscribed.is_set, 10, "the cloud's subscription")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._client is not None
        self._client.loop_stop()
        self._client.disconnect()

    def send(
        self,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        ident: str | None = None,
        key: str | None = None,
        ts: float | None = None,
        extra: dict[str, Any] | None = None,
        expiry: int | None = None,
        raw: bytes | None = None,
    ) -> str:
        """Publish a command; its id."""
        ident = ident or uuid.uuid4().hex
        doc: dict[str, Any] = {"id": ident, "args": args or {}, **(extra or {})}
        if key is not None:
            doc["ts"] = time.time() if ts is None else ts
            doc["sig"] = sign(key, name, doc)
        properties = None
        if self.v5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = ident.encode()
            properties.ResponseTopic = f"{self.base}/result/{ident}"
            if expiry is not None:
                properties.MessageExpiryInterval = expiry
        assert self._client is not None
        payload = raw if raw is not None else json.dumps(doc).encode()
        info = self._client.publish(f"{self.base}/{name}", payload, qos=1, properties=properties)
        info.wait_for_publish(10)
        return ident

    def of(self, ident: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.results if r.get("id") == ident]

    def final(self, ident: str, timeout: float = 10) -> dict[str, Any]:
        """The final result of command ``ident`` (waiting for it)."""

        def found() -> dict[str, Any] | None:
            done = [r for r in self.of(ident) if r["status"] not in ("accepted",)]
            return done[-1] if done else None

        wait_until(lambda: found() is not None, timeout, f"the final result of {ident}")
        result = found()
        assert result is not None
        return result
