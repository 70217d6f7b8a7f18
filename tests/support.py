"""Real parts for tests: a subscriber on the real broker, the gateway as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import TypeAdapter

from tidegate.config.loader import load_config_text
from tidegate.drivers.framing.lines import Framer, FramingConfig, make_framer
from tidegate.pipeline import Gateway

TIDEGATE = [sys.executable, "-m", "tidegate"]


def tidegate(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process, as a user would; never raises on a non-zero exit."""
    return subprocess.run(
        [*TIDEGATE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.02
) -> None:
    """Wait for ``condition`` with a deadline; fail the test saying what never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    content_type: str | None = None
    """MQTT 5's Content Type property, where the message had one."""
    user_properties: list[tuple[str, str]] = field(default_factory=list)
    """MQTT 5's User Properties, in order."""
    message_expiry: int | None = None
    """MQTT 5's Message Expiry Interval as the broker forwarded it (what was left)."""


@dataclass
class Subscriber:
    """A paho client on its own thread that records everything under a topic filter."""

    host: str
    port: int
    topic: str = "#"
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311
    messages: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: paho.Client | None = None
    _subscribed: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Subscriber:
        return self._start(paho.Client(CallbackAPIVersion.VERSION2, protocol=self.protocol))

    def start_persistent(self, client_id: str) -> Subscriber:
        """A session the broker keeps (and queues for) while we are away."""
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        client.reconnect_delay_set(1, 2)
        return self._start(client)

    def _start(self, client: paho.Client) -> Subscriber:
        client.max_inflight_messages_set(1000)

        def on_connect(c: paho.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
            c.subscribe(self.topic, qos=1)

        def on_subscribe(c: paho.Client, u: Any, mid: int, rcs: Any, p: Any) -> None:
            self._subscribed.set()

        def on_message(c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
            with self._lock:
                props = msg.properties
                self.messages.append(
                    Received(
                        msg.topic,
                        bytes(msg.payload),
                        bool(msg.retain),
                        msg.qos,
                        getattr(props, "ContentType", None) if props is not None else None,
                        list(getattr(props, "UserProperty", None) or []),
                        getattr(props, "MessageExpiryInterval", None) if props else None,
                    )
                )

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect(self.host, self.port)
        client.loop_start()
        self._client = client
        if not self._subscribed.wait(10):
            raise AssertionError("test subscriber could not subscribe")
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def events(self) -> list[dict[str, Any]]:
        """Every event received, arrays unpacked; status messages left out."""
        out: list[dict[str, Any]] = []
        for msg in self.snapshot():
            if msg.topic.endswith("/status"):
                continue
            doc = json.loads(msg.payload)
            out.extend(doc if isinstance(doc, list) else [doc])
        return out

    def count(self) -> int:
        return len(self.events())


def seqs_by_source(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    by_source: dict[str, list[int]] = defaultdict(list)
    for e in events:
        by_source[e["source"]].append(e["seq"])
    return by_source


def assert_contiguous(events: list[dict[str, Any]], upto: dict[str, int] | None = None) -> None:
    """Per source, the distinct seqs received are exactly 1..max (or 1..upto[source])."""
    for source, seqs in seqs_by_source(events).items():
        distinct = sorted(set(seqs))
        top = upto[source] if upto and source in upto else distinct[-1]
        missing = sorted(set(range(1, top + 1)) - set(distinct))
        assert not missing, f"{source}: missing seq {missing[:10]} (of {len(missing)}), top {top}"


def assert_same_ids_for_duplicates(events: list[dict[str, Any]]) -> None:
    """Every copy of (source, seq) carries the same id, and ids are unique otherwise."""
    id_of: dict[tuple[str, int], str] = {}
    owner: dict[str, tuple[str, int]] = {}
    for e in events:
        key = (e["source"], e["seq"])
        assert id_of.setdefault(key, e["id"]) == e["id"], f"duplicate {key} with another id"
        assert owner.setdefault(e["id"], key) == key, f"id {e['id']} used for two events"


class GatewayProcess:
    """``tidegate run -c CONFIG`` as a real child process."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*TIDEGATE, "run", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        return self

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM and wait; SIGKILL if it hangs (the test then fails on the exit code)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
                return -9
        return self.process.returncode


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- memory of a real process ------------------------------------------------------------------


def memory_kib(pid: int, field: str = "VmHWM") -> int:
    """A memory figure of a live process from /proc (VmHWM: the peak resident set)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no {field}")


def cap_address_space(pid: int, limit_bytes: int) -> None:
    """Bound what a child may allocate, so a regression that balloons fails fast
    (MemoryError) instead of taking the shared machine's memory."""
    resource.prlimit(pid, resource.RLIMIT_AS, (limit_bytes, limit_bytes))


# -- the gateway in this process ---------------------------------------------------------------


def run_in_process(
    config_text: str, until: Callable[[Gateway], bool], timeout: float = 20
) -> Gateway:
    """Run a Gateway in this process until ``until(gateway)`` holds, then stop it cleanly."""
    gateway = Gateway(load_config_text(config_text))

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        try:
            async with asyncio.timeout(timeout):
                while not until(gateway):
                    if task.done():
                        task.result()
                        raise AssertionError("gateway stopped early")
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            await task

    asyncio.run(main())
    return gateway


def delivered(n: int) -> Callable[[Gateway], bool]:
    def check(gateway: Gateway) -> bool:
        return gateway.publisher is not None and gateway.publisher.status.events_delivered >= n

    return check


# -- framers, fed as a serial port feeds them ------------------------------------------------

FRAMING: TypeAdapter[FramingConfig] = TypeAdapter(FramingConfig)


class Rejects(list[tuple[bytes, str]]):
    """The ``reject`` callback a driver would pass: it records what it is given."""

    def __call__(self, raw: bytes, reason: str) -> None:
        self.append((raw, reason))

    def reasons(self) -> list[str]:
        return [reason for _, reason in self]


def framer_for(config: dict[str, Any]) -> tuple[Framer, Rejects]:
    rejects = Rejects()
    return make_framer(FRAMING.validate_python(config), rejects), rejects


def feed_in_pieces(framer: Framer, data: bytes, size: int) -> list[bytes]:
    frames: list[bytes] = []
    for i in range(0, len(data), size):
        frames += framer.feed(data[i : i + size])
    return frames


def laptop_version(text: str) -> str:
    """An example configuration with the lines its comments mark "laptop: sim" switched
    to simulated devices, as those comments tell a user to."""
    text = re.sub(r"(?m)^(\s+port: )/dev/\S+(.*laptop: sim)", r"\1sim\2", text)
    text = re.sub(r"(?m)^(\s+path: )/sys/\S+(.*laptop: sim)", r"\1sim\2", text)
    return re.sub(r"(?m)^(\s+backend: )gpiod(.*laptop: sim)", r"\1sim\2", text)
