"""Late events through a real ``tidegate run``, compared with ``tidegate rules test``.

tests/test_late_events.py and tests/test_dedup.py drive the real ``RuleStage``;
here the whole path is real: a device publishes JSON readings to Mosquitto, the
gateway's ``mqtt`` driver takes each reading's time from the payload
(``parse.time_field``), the rules run in a ``tidegate run`` process and publish
to the same broker, where a subscriber records what comes out. Then the same
config, with the readings sent as its recorded-events file, goes through the
real ``tidegate rules test`` command, which must give the same output.

The scenario: sensor ``a`` reports on time; then a device uploads what it
buffered while offline, stamped 65-120 s in the past, in a burst: ``b`` was hot
(no reading of the burst completes the alarm's 60 s by itself: only the clock
does), ``c`` was seen once 110 s ago and not since, ``d`` reported the same
value twice within the dedup window. Then ``d`` reports on time, sends its
upload again (a retry: a duplicate 100 s behind the clock, inside its window
and inside ``allowed_lateness``), and a sentinel reading follows it.

Every time that matters is a reading's own stamp, and every outcome is due at
least 5 s before the newest stamp or 60 s after it, so the live gateway (whose
``time: processing`` clock is the wall clock, a few seconds past the newest
stamp while the test runs) and the replay (whose clock is the newest stamp)
must agree exactly.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import TIDEGATE, GatewayProcess, Subscriber, wait_until, write_config
from tidegate.demo.local_broker import LocalBroker
from tidegate.timefmt import rfc3339

WAIT = 10.0
"""A deadline for conditions; a passing run never waits this long."""

DRIVER_CLIENT_ID = "tidegate-late-devices"

Reading = tuple[str, float, int]
"""A device reading: source, value, stamp relative to the on-time reading (seconds)."""

ON_TIME: list[Reading] = [("a", 20.0, 0)]
BURST: list[Reading] = [
    ("b", 35.0, -120),
    ("c", 21.0, -110),
    ("b", 36.0, -90),
    ("d", 5.0, -100),
    ("b", 37.0, -65),
    ("d", 5.0, -95),  # a repeat inside d's 30 s window, 95 s behind the clock
]
BACK: list[Reading] = [("d", 7.0, 0)]  # d is back online: it moves d's dedup clock
RETRY: list[Reading] = [("d", 5.0, -100)]  # d's upload sent again
SENTINEL: list[Reading] = [("d", 6.0, -90)]
SENT = ON_TIME + BURST + BACK + RETRY + SENTINEL

Output = tuple[str, str, str, Any, str, tuple[tuple[str, str], ...]]
"""An output event as compared: topic, source, name, value, time (RFC 3339), tags."""
Created = tuple[str, str, str, Any, str]
"""An event an operator made, without its tags: topic, source, name, value, time."""


def config_text(tmp_path: Path, broker: LocalBroker, clock: str) -> str:
    """The mqtt driver in; three rules on ``clock`` publishing to out/<rule>/…"""
    return f"""
gateway: {{id: late, data_dir: {tmp_path / "data"}}}
mqtt:
  host: 127.0.0.1
  port: {broker.port}
  reconnect: {{initial_delay: 100ms, max_delay: 1s}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: devices
    type: mqtt
    port: {broker.port}
    client_id: {DRIVER_CLIENT_ID}
    reconnect: {{initial_delay: 50ms, max_delay: 500ms}}
    subscriptions:
      - topic: dev/+/up
        source: "{{topic[1]}}"
        parse:
          format: json
          fields: {{t: {{name: temperature}}}}
          time_field: {{field: ts, format: epoch_s}}
rules:
  # The gateway clock has reached the rules once this reports (a stream never seen,
  # stale one tick after the first): the test's way to know the gateway has ticked.
  - name: ticking
    match: {{source: gateway-clock}}
    absence: {{after: 1ms, expect: [{{source: gateway-clock, name: tick}}]}}
    publish: {{topic: "ready/{{source}}/{{name}}"}}
  # `continue` lets every reading reach the three rules; what they create (alarms,
  # absence reports) is not a temperature and stops after its rule.
  - name: hot
    time: {clock}
    match: {{name: temperature}}
    alarm: {{above: 30, for: 60s}}
    publish: {{topic: "out/hot/{{source}}/{{name}}", continue: true}}
  - name: silent
    time: {clock}
    match: {{name: temperature}}
    absence: {{after: 60s}}
    publish: {{topic: "out/silent/{{source}}/{{name}}", continue: true}}
  # Only d's stream, so that this check can fail: dedup used to forget passes in the
  # order they passed, and a's newer pass, ahead of d's, would have kept d's by luck.
  - name: once
    time: {clock}
    match: {{source: d, name: temperature}}
    dedup: {{within: 30s, allowed_lateness: 5m}}
    publish: {{topic: "out/once/{{source}}/{{name}}"}}
"""


def make_driver_session(broker: LocalBroker) -> None:
    """Create the driver's persistent session before the gateway starts: the broker
    queues for it every reading published from now on, so none can be missed."""
    session = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=DRIVER_CLIENT_ID, clean_session=False
    )
    subscribed = threading.Event()
    session.on_subscribe = lambda *_: subscribed.set()
    session.connect(broker.host, broker.port)
    session.loop_start()
    try:
        session.subscribe("dev/+/up", qos=1)
        wait_until(subscribed.is_set, WAIT, "the driver session's subscription")
    finally:
        session.disconnect()
        session.loop_stop()


class Device:
    """One real MQTT client publishing readings in order (QoS 1, one connection)."""

    def __init__(self, broker: LocalBroker, origin: float) -> None:
        self.origin = origin
        self.sent: list[Reading] = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="late-device")
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def publish(self, readings: Sequence[Reading]) -> None:
        for reading in readings:
            source, value, offset = reading
            payload = json.dumps({"t": value, "ts": self.origin + offset})
            info = self._client.publish(f"dev/{source}/up", payload, qos=1)
            info.wait_for_publish(WAIT)  # PUBACK: the broker has it, in this order
            assert info.is_published(), f"the broker did not take {reading}"
            self.sent.append(reading)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Scene:
    """One run's real parts: the config, the device, the subscribers, the gateway."""

    def __init__(self, tmp_path: Path, broker: LocalBroker, clock: str, stack: ExitStack) -> None:
        self.config = write_config(tmp_path / "tidegate.yaml", config_text(tmp_path, broker, clock))
        self.events = tmp_path / "events.jsonl"
        make_driver_session(broker)
        self.out = Subscriber(broker.host, broker.port, "out/#").start()
        stack.callback(self.out.stop)
        self.ready = Subscriber(broker.host, broker.port, "ready/#").start()
        stack.callback(self.ready.stop)
        # Whole seconds: the stamps, and the times the rules derive from them, are exact.
        self.origin = float(int(time.time()))
        self.device = Device(broker, self.origin)
        stack.callback(self.device.stop)
        self.gateway = GatewayProcess(self.config, tmp_path / "gateway.log")
        stack.callback(self.gateway.kill)

    def at(self, offset: int) -> str:
        return rfc3339(self.origin + offset)

    def outputs(self) -> list[Output]:
        found: list[Output] = []
        for message in self.out.snapshot():
            doc = json.loads(message.payload)
            found += [output(message.topic, e) for e in (doc if isinstance(doc, list) else [doc])]
        return found

    def created(self) -> list[Created]:
        return created(self.outputs())

    def on(self, topic: str) -> list[tuple[Any, str]]:
        """(value, time) of the readings published to ``topic``, in arrival order."""
        return [(o[3], o[4]) for o in self.outputs() if o[0] == topic]

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        """``wait_until``; if the gateway exits meanwhile, fail at once. Either way the
        failure shows the gateway's log, where the reason usually is."""

        def exited() -> bool:
            process = self.gateway.process
            return process is not None and process.poll() is not None

        try:
            wait_until(lambda: condition() or exited(), WAIT, what)
            if not condition():
                raise AssertionError(f"the gateway exited while waiting for {what}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; gateway log:\n{self.gateway.output()[-4000:]}") from None

    def stop_gateway(self) -> None:
        assert self.gateway.stop() == 0, self.gateway.output()
        assert "Traceback" not in self.gateway.output()

    def replayed(self) -> list[Output]:
        """The real `tidegate rules test`: the same config, the readings sent as its input."""
        self.events.write_text(
            "".join(
                json.dumps({"source": s, "name": "temperature", "value": v, "time": self.at(t)})
                + "\n"
                for s, v, t in self.device.sent
            )
        )
        proc = subprocess.run(
            [*TIDEGATE, "rules", "test", str(self.config), str(self.events)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return [output(doc["topic"], doc) for doc in map(json.loads, proc.stdout.splitlines())]

    def alarm(self) -> Created:
        """What the late upload completes: b's alarm, raised 60 s after its first reading."""
        return ("out/hot/b/temperature_alarm", "b", "temperature_alarm", "raised", self.at(-60))

    def c_stale(self) -> Created:
        """c, seen once 110 s before the clock: silent for 60 s at -50."""
        stale = ("c", "temperature_absence", "stale", self.at(-50))
        return ("out/silent/c/temperature_absence", *stale)

    def d_passed(self) -> list[tuple[Any, str]]:
        """d's readings the dedup lets through: each repeat of 5 inside its window is not."""
        return [(5.0, self.at(-100)), (7.0, self.at(0)), (6.0, self.at(-90))]

    def check_against_replay(self) -> None:
        """After the gateway stopped: it took in exactly what was sent, and its whole
        output equals what `tidegate rules test` gives for the same readings."""
        assert self.device.sent == SENT
        live = self.outputs()
        for source in "abcd":
            assert [(o[3], o[4]) for o in live if o[0] == f"out/hot/{source}/temperature"] == [
                (v, self.at(t)) for s, v, t in SENT if s == source
            ]
        assert [c for c in created(live) if c[2] == "temperature_alarm"] == [self.alarm()]
        assert sorted(live, key=repr) == sorted(self.replayed(), key=repr)


@contextmanager
def scene(tmp_path: Path, broker: LocalBroker, clock: str) -> Iterator[Scene]:
    """A ``Scene``; everything it started is stopped at the end, even if it fails halfway."""
    with ExitStack() as stack:
        yield Scene(tmp_path, broker, clock, stack)


def output(topic: str, event: dict[str, Any]) -> Output:
    tags = tuple(sorted((event.get("tags") or {}).items()))
    return (topic, event["source"], event["name"], event["value"], event["time"], tags)


def created(outputs: Sequence[Output]) -> list[Created]:
    """What the operators made (alarms, absence reports): topic, source, name, value, time."""
    return [o[:5] for o in outputs if o[2] != "temperature"]


CLOCKS = ["processing", "event"]


@pytest.mark.parametrize("clock", CLOCKS)
def test_a_late_upload_to_a_running_gateway_gives_what_rules_test_gives(
    tmp_path: Path, broker: LocalBroker, clock: str
) -> None:
    with scene(tmp_path, broker, clock) as s:
        s.gateway.start()
        # Until the pipeline first ticks the rules, a `time: processing` rule has no clock
        # and nothing is late to it (see the backlog test below).
        s.wait(lambda: s.ready.snapshot() != [], "the gateway clock reaching the rules")
        s.device.publish(ON_TIME)
        s.wait(
            lambda: s.on("out/silent/a/temperature") == [(20.0, s.at(0))],
            "the on-time reading (the clock of the `time: event` rules)",
        )

        s.device.publish(BURST)
        # Nothing more is sent until these are out: the alarm and the silence the upload
        # completes by the clock must come without the clock moving (a `time: event`
        # rule's clock moves only with a newer event).
        s.wait(
            lambda: s.alarm() in s.created() and s.c_stale() in s.created(),
            "the alarm and the silence the late upload completes",
        )

        s.device.publish(BACK + RETRY + SENTINEL)
        sentinel = s.d_passed()[-1]
        s.wait(lambda: sentinel in s.on("out/once/d/temperature"), "the sentinel")
        # Per source, events arrive in the order they were accepted: a repeat of d that
        # passed the dedup would have arrived before the sentinel.
        assert s.on("out/once/d/temperature") == s.d_passed(), (
            "a late duplicate inside the dedup window was published"
        )

        s.stop_gateway()
        s.check_against_replay()


@pytest.mark.parametrize(
    "clock",
    [
        "processing",
        "event",
    ],
)
def test_a_backlog_delivered_at_startup_gives_what_rules_test_gives(
    tmp_path: Path, broker: LocalBroker, clock: str
) -> None:
    """The gateway was stopped while the devices published: its persistent session
    queued everything, and the broker delivers it in one go when the gateway starts
    (within milliseconds: before the pipeline's first tick)."""
    with scene(tmp_path, broker, clock) as s:
        s.device.publish(SENT)
        s.gateway.start()
        sentinel = s.d_passed()[-1]
        s.wait(
            lambda: sentinel in s.on("out/once/d/temperature") and s.alarm() in s.created(),
            "the backlog's sentinel and alarm",
        )
        assert s.on("out/once/d/temperature") == s.d_passed()
        s.stop_gateway()
        s.check_against_replay()
