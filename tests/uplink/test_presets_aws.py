"""``preset: aws_iot``: AWS IoT Core's topic rules per event, and its message size, through
a real Mosquitto that, like AWS IoT, takes only TLS connections with a client
certificate (no AWS endpoint is reachable from here)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt.support import make_pki, run, until
from tests.support import Received, Subscriber, wait_until
from tidegate.config.schema import MqttSection
from tidegate.demo.local_broker import LocalBroker, free_port, port_open
from tidegate.event import new_event
from tidegate.outbox import AsyncOutbox
from tidegate.outgoing import Outgoing
from tidegate.uplink.formats import FormatContext, FormatError, format_named
from tidegate.uplink.presets.base import preset_for
from tidegate.uplink.presets.config import aws_topic_problem
from tidegate.uplink.publisher import Publisher


def test_topics_of_256_bytes_and_7_slashes_are_the_most_aws_iot_takes() -> None:
    assert aws_topic_problem("t" * 256) is None
    assert aws_topic_problem("t" * 257) == "its topic is 257 bytes; AWS IoT takes at most 256"
    assert aws_topic_problem("é" * 128) is None
    assert aws_topic_problem("é" * 128 + "x") is not None  # bytes, not characters
    assert aws_topic_problem("a/b/c/d/e/f/g/h") is None
    assert aws_topic_problem("a/b/c/d/e/f/g/h/i") == (
        "its topic has 8 slashes; AWS IoT takes at most 7"
    )


def test_each_events_topic_is_checked_as_the_format_writes_it() -> None:
    mqtt = MqttSection.model_validate(
        {
            "host": "x.amazonaws.com",
            "preset": "aws_iot",
            "client_id": "farm-7",
            "tls": {"cert_file": "c", "key_file": "k"},
            "format": "thingsboard",  # its own topic: checked too, and fine
        }
    )
    preset = preset_for(mqtt, None)
    fmt = preset.wrap(format_named("thingsboard", FormatContext("farm/status")))
    stored = json.dumps({"source": "s", "name": "n", "value": 1, "time": "2026-01-01T00:00:00Z"})
    assert fmt.topic_for("a/b/c/d/e/f/g/h/i", stored.encode()) == "v1/gateway/telemetry"
    json_fmt = preset.wrap(format_named("json", FormatContext("farm/status")))
    with pytest.raises(FormatError, match="its topic 'a/b/c/d/e/f/g/h/i' has 8 slashes"):
        json_fmt.topic_for("a/b/c/d/e/f/g/h/i", stored.encode())
    assert json_fmt.name == "json for AWS IoT"
    assert preset.unbuffered_topic("tidegate/farm-7/metrics") == "tidegate/farm-7/metrics"
    assert preset.unbuffered_topic("/".join("abcdefghij")) is None


@pytest.fixture
def mtls_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, int, dict[str, Path]]]:
    """Mosquitto taking only TLS with a client certificate its CA signed, as AWS IoT
    does; and a plain listener beside it for the test's subscriber."""
    pki = make_pki(tmp_path / "pki")
    plain = free_port()
    with LocalBroker(
        tmp_path / "broker",
        extra_config=(
            f"cafile {pki['ca.crt']}\ncertfile {pki['server.crt']}\n"
            f"keyfile {pki['server.key']}\nrequire_certificate true\n"
            f"listener {plain} 127.0.0.1\n"
        ),
    ) as broker:
        # Mosquitto opens its listeners one after the other: start() waited for the first.
        wait_until(lambda: port_open(broker.host, plain), 10, "the plain listener")
        yield broker, plain, pki


SMALL = "farm/s1/level"
DEEP = "farm/a/b/c/d/e/f/g/h"
LONG = "farm/" + "x" * 260


def test_an_event_that_breaks_a_rule_is_dead_lettered_alone_and_its_neighbours_delivered(
    tmp_path: Path, mtls_broker: tuple[LocalBroker, int, dict[str, Path]]
) -> None:
    broker, plain, pki = mtls_broker
    sub = Subscriber(broker.host, plain, "#").start()
    mqtt = MqttSection.model_validate(
        {
            "host": "127.0.0.1",
            "port": broker.port,
            "preset": "aws_iot",
            "client_id": "farm-7",
            "tls": {
                "ca_file": str(pki["ca.crt"]),
                "cert_file": str(pki["client.crt"]),
                "key_file": str(pki["client.key"]),
            },
            "events_per_message": 10,
            "reconnect": {"initial_delay": 0.05, "max_delay": 0.1},
        }
    )
    assert mqtt.max_message_bytes == 128 * 1024

    def event(value: float | str, topic: str = SMALL) -> Outgoing:
        return Outgoing(new_event("s1", "level", value), topic, 1, False)

    batch = [
        *(event(float(i)) for i in range(4)),
        event("y" * (128 * 1024)),  # alone larger than any message AWS IoT takes
        *(event(float(i)) for i in range(4, 7)),
        event(7.0, DEEP),
        event(8.0, LONG),
        *(event(float(i)) for i in range(9, 12)),
    ]

    async def main() -> None:
        outbox = AsyncOutbox.create(tmp_path / "o.db", "gw")
        await outbox.open()
        await outbox.put(batch)
        pub = Publisher(
            mqtt,
            outbox,
            client_id="farm-7",
            status_topic="farm/status",
            password=None,
            ack_interval=0.02,
        )
        task = asyncio.create_task(pub.run())
        await until(lambda: outbox.stats.depth == 0, 15, "every event delivered or refused")
        assert pub.status.connected  # one connection: nothing made the broker drop it
        assert (pub.status.connects, pub.status.events_delivered) == (1, 10)
        await pub.stop(0.5)
        await asyncio.wait_for(task, 5)
        await outbox.close()

    run(main(), timeout=30)

    def sub_events() -> list[Received]:
        return [m for m in sub.snapshot() if m.topic != "farm/status"]

    run(until(lambda: len(sub_events()) >= 1, 10, "the batch at the subscriber"))
    sub.stop()
    (message,) = sub_events()  # the ten neighbours, in one message, in order
    assert message.topic == SMALL
    assert [e["value"] for e in json.loads(message.payload)] == [
        float(i) for i in range(12) if i not in (7, 8)
    ]
    with sqlite3.connect(tmp_path / "o.db") as db:
        letters = sorted(db.execute("SELECT topic, reason FROM dead_letters").fetchall())
    assert letters == [
        (
            DEEP,
            f"cannot be written as json for AWS IoT: its topic '{DEEP}' has 8 slashes; "
            "AWS IoT takes at most 7",
        ),
        (SMALL, "larger than the broker's message limit (131072 B)"),
        (
            LONG,
            f"cannot be written as json for AWS IoT: its topic '{LONG}' is 265 bytes; "
            "AWS IoT takes at most 256",
        ),
    ]
