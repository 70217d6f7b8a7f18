"""The ``mqtt`` driver against a real Mosquitto: devices publish, the driver emits events.

Messages are published with aiomqtt (another real client) to a private broker; the
driver subscribes (tidegate.mqtt.wire; paho for a QoS 2 subscription), parses, and hands
batches to ``emit``.
"""

from __future__ import annotations

import asyncio
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.drivers.devices import mqtt_config, mqtt_on, publish, q1
from tests.drivers.harness import Probe, eventually
from tidegate.demo.local_broker import LocalBroker
from tidegate.driver import DriverState

# --- formats ------------------------------------------------------------------------

FORMATS: dict[str, tuple[dict[str, Any], bytes, list[tuple[str, Any, str | None]]]] = {
    "json": (
        {"format": "json", "fields": {"t": {"name": "temperature", "unit": "°C"},
                                      "env.h": {"name": "humidity", "unit": "%"}}},
        b'{"t": 21.5, "env": {"h": 40}}',
        [("temperature", 21.5, "°C"), ("humidity", 40.0, "%")],
    ),
    "kv": (
        {"format": "kv", "fields": {"T": {"name": "temperature"}, "N": {"type": "int"}}},
        b"T=21.5,N=7",
        [("temperature", 21.5, None), ("N", 7, None)],
    ),
    "csv": (
        {"format": "csv", "delimiter": ";", "columns": ["t", "h", "door"],
         "fields": {"door": {"type": "bool"}}, "unlisted": "include"},
        b"21.5;40;1",
        [("door", True, None), ("t", 21.5, None), ("h", 40.0, None)],
    ),
    "regex": (
        {"format": "regex", "pattern": r"^\$WIMDA,(?P<inhg>[0-9.]+),I,(?P<bar>[0-9.]+),B",
         "fields": {"bar": {"name": "pressure", "scale": 1000, "unit": "hPa"}}},
        b"$WIMDA,29.9139,I,1.0130,B,21.5,C",
        [("pressure", pytest.approx(1013.0), "hPa")],
    ),
    "struct": (
        {"format": "struct", "byte_order": "little",
         "fields": {"pulses": {"offset": 0, "type": "u32"},
                    "temp": {"offset": 4, "type": "i16", "scale": 0.1, "unit": "°C"}}},
        struct.pack("<Ih", 123456, -25),
        [("pulses", 123456, None), ("temp", pytest.approx(-2.5), "°C")],
    ),
    "raw": ({"format": "raw"}, b"hello world", [("raw", "hello world", None)]),
    "raw-hex": ({"format": "raw", "encoding": "hex", "name": "frame"}, b"\x01\xab",
                [("frame", "01ab", None)]),
}


@pytest.mark.parametrize("case", sorted(FORMATS))
def test_each_format_turns_messages_into_events(broker: LocalBroker, case: str) -> None:
    parse, payload, expected = FORMATS[case]

    async def scenario() -> None:
        probe = Probe()
        config = mqtt_config(broker.port, [{"topic": "dev/#", "parse": parse}])
        async with mqtt_on(config, probe):
            await publish(broker.port, [q1("dev/x", payload)])
            await eventually(lambda: len(probe.events) >= len(expected), f"{case} events")
        got = [(e.name, e.value, e.unit) for e in probe.events]
        assert got == expected
        assert {e.source for e in probe.events} == {"site"}  # default: the driver's name
        assert probe.rejects == []

    asyncio.run(scenario())


def test_source_and_name_come_from_topic_levels(broker: LocalBroker) -> None:
    subscriptions = [
        {"topic": "tele/+/SENSOR", "source": "{topic[1]}",
         "parse": {"format": "json", "fields": {"AM2301.Temperature": {"name": "temperature"}}}},
        {"topic": "home/+/+", "source": "{topic[1]}", "name": "{topic[2]}",
         "parse": {"format": "csv", "columns": ["value"], "fields": {"value": {}}}},
        {"topic": "z2m/#", "source": "z2m-{topic[1]}", "name": "{topic[-1]}.{field}",
         "parse": {"format": "json", "unlisted": "include"}},
        {"topic": "stat/+/POWER", "source": "{driver}-{topic[-2]}", "name": "power",
         "parse": {"format": "csv", "columns": ["on"], "fields": {"on": {"type": "bool"}}}},
    ]

    async def scenario() -> None:
        probe = Probe()
        async with mqtt_on(mqtt_config(broker.port, subscriptions), probe):
            await publish(
                broker.port,
                [
                    q1("tele/kitchen/SENSOR", '{"AM2301": {"Temperature": 21.5}}'),
                    q1("home/cellar/humidity", "61.2"),
                    q1("z2m/Living Room/sensor", '{"battery": 90}'),
                    q1("stat/plug-1/POWER", "ON"),
                ],
            )
            await eventually(lambda: len(probe.events) >= 4, "four events")
        assert probe.triples() == [
            ("kitchen", "temperature", 21.5),
            ("cellar", "humidity", 61.2),
            ("z2m-Living_Room", "sensor.battery", 90),  # cleaned: no spaces in names
            ("site-plug-1", "power", True),
        ]

    asyncio.run(scenario())


def test_bad_messages_are_rejected_with_reasons_and_reading_goes_on(broker: LocalBroker) -> None:
    subscriptions = [
        {"topic": "j/+", "parse": {"format": "json", "fields": {"t": {"required": True}}}},
        {"topic": "c/+", "parse": {"format": "csv", "columns": ["a", "b"],
                                   "unlisted": "include"}},
        {"topic": "s/+", "parse": {"format": "struct", "fields": {"v": {"offset": 2,
                                                                        "type": "u16"}}}},
        {"topic": "deep/#", "source": "{topic[2]}", "parse": {"format": "raw"}},
    ]

    async def scenario() -> None:
        probe = Probe()
        async with mqtt_on(mqtt_config(broker.port, subscriptions), probe) as driver:
            await publish(
                broker.port,
                [
                    q1("j/1", "{not json"),
                    q1("j/1", '{"h": 1}'),
                    q1("c/1", "1,2,3"),
                    q1("s/1", b"\x00\x01\x02"),
                    q1("deep/a", "x"),
                    q1("j/1", '{"t": 5}'),
                ],
            )
            await eventually(lambda: len(probe.events) == 1, "the good message after the bad")
            assert driver.rejects == 5 and driver.health.errors == 5
            assert driver.health.state is DriverState.RUNNING
        reasons = [reason for _, reason in probe.rejects]
        patterns = [
            r"^topic 'j/1': not JSON",
            r"^topic 'j/1': required field 't' is missing",
            r"^topic 'c/1': expected 2 columns, got 3",
            r"^topic 's/1': frame of 3 bytes is too short for field 'v'",
            r"^topic 'deep/a': '\{topic\[2\]\}' reads level 2, but 'deep/a' has 2 levels",
        ]
        for reason, pattern in zip(reasons, patterns, strict=True):
            assert re.search(pattern, reason), reason
        assert [raw for raw, _ in probe.rejects][:2] == [b"{not json", b'{"h": 1}']
        assert probe.triples() == [("site", "t", 5.0)]

    asyncio.run(scenario())


def test_retained_messages_are_skipped_unless_the_subscription_wants_them(
    broker: LocalBroker,
) -> None:
    async def scenario() -> None:
        await publish(broker.port, [("state/a", b"1", 1, True), ("state/b", b"2", 1, True)])
        probe = Probe()
        subscriptions: list[dict[str, Any]] = [
            {"topic": "state/a", "parse": {"format": "raw", "name": "a"}},
            {"topic": "state/b", "retained": True, "parse": {"format": "raw", "name": "b"}},
        ]
        async with mqtt_on(mqtt_config(broker.port, subscriptions), probe) as driver:
            await eventually(lambda: len(probe.events) == 1, "the wanted retained message")
            # A live message is an event even when its publisher set the retain flag.
            await publish(broker.port, [("state/a", b"3", 1, True)])
            await eventually(lambda: len(probe.events) == 2, "the live message")
            assert driver.retained_skipped == 1
        assert [(e.name, e.value) for e in probe.events] == [("b", "2"), ("a", "3")]

    asyncio.run(scenario())


# --- batching and flow control --------------------------------------------------------


def test_messages_waiting_while_emit_is_busy_go_out_as_one_batch(broker: LocalBroker) -> None:
    async def scenario() -> None:
        probe = Probe()
        probe.gate = asyncio.Event()
        config = mqtt_config(broker.port, [{"topic": "n/+", "parse": {"format": "kv",
                                                                         "unlisted": "include"}}])
        async with mqtt_on(config, probe) as driver:
            await publish(broker.port, [q1(f"n/{i % 3}", f"i={i}") for i in range(300)])
            # The first burst is held in emit; the rest waits, unacknowledged.
            await eventually(lambda: probe.held + driver.waiting == 300, "300 arrivals")
            assert probe.blocked == 1
            probe.gate.set()
            await eventually(lambda: len(probe.events) == 300, "all 300 events")
        assert [len(batch) for batch in probe.batches] == [probe.held, 300 - probe.held]
        assert [e.value for e in probe.events] == [float(i) for i in range(300)]

    asyncio.run(scenario())


def test_qos0_beyond_max_pending_is_dropped_and_counted(broker: LocalBroker) -> None:
    async def scenario() -> None:
        probe = Probe()
        probe.gate = asyncio.Event()
        config = mqtt_config(
            broker.port,
            [{"topic": "n/+", "qos": 0, "parse": {"format": "raw"}}],
            max_pending=10,
        )
        async with mqtt_on(config, probe) as driver:
            await publish(broker.port, [(f"n/{i}", str(i).encode(), 0, False) for i in range(50)])
            await eventually(
                lambda: probe.held + driver.waiting + driver.dropped == 50, "50 arrivals"
            )
            # The first burst (at most max_pending) is held in emit, 10 more wait.
            assert 1 <= probe.held <= 10 and probe.blocked == 1
            assert (driver.waiting, driver.dropped) == (10, 40 - probe.held)
            assert driver.health.errors == 1  # one overflow, one error
            assert driver.health.last_error is not None
            assert "dropping QoS 0" in driver.health.last_error
            probe.gate.set()
            await eventually(lambda: len(probe.events) == probe.held + 10, "the kept messages")
        kept = [int(e.value) for e in probe.events if isinstance(e.value, str)]
        assert kept == list(range(probe.held + 10))  # the oldest are kept, the newest dropped

    asyncio.run(scenario())


def test_a_backlog_larger_than_max_pending_drains_without_drops(tmp_path: Path) -> None:
    """A resumed session's queue floods in before the SUBACK; it must flow, not pile up."""
    queueing = LocalBroker(tmp_path / "broker", extra_config="queue_qos0_messages true")
    queueing.start()

    async def scenario() -> None:
        config = mqtt_config(
            queueing.port, [{"topic": "n/+", "qos": 0, "parse": {"format": "raw"}}],
            max_pending=10,
        )
        async with mqtt_on(config, Probe()):
            pass
        await publish(queueing.port, [(f"n/{i}", str(i).encode(), 0, False) for i in range(500)])
        probe = Probe()
        async with mqtt_on(config, probe) as driver:
            await publish(queueing.port, [q1("n/marker", "end")])
            await eventually(lambda: len(probe.events) == 501, "the backlog and the marker")
            assert driver.dropped == 0
        assert [e.value for e in probe.events] == [*map(str, range(500)), "end"]
        assert max(len(batch) for batch in probe.batches) > 1  # read in bursts

    try:
        asyncio.run(scenario())
    finally:
        queueing.kill()
