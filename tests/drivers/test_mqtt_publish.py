"""Actions publishing through the ``mqtt`` driver to a real Mosquitto, on both link kinds.

The driver's link is tidegate's own MQTT code (``wire``) unless a subscription is at
QoS 2 (``paho``); a publish goes out on whichever the driver has. A paho client on its
own thread (``tests.support.Subscriber``) plays the device that receives it.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.drivers.devices import mqtt_config, mqtt_on
from tests.drivers.harness import Probe, eventually
from tests.support import Received, Subscriber
from tidegate.demo.local_broker import LocalBroker
from tidegate.driver import DriverState
from tidegate.drivers.mqtt.link import BrokerLink
from tidegate.drivers.mqtt.wire_link import WireLink
from tidegate.errors import ActionError, ActionRefused

LINKS = {"wire": (WireLink, 1), "paho": (BrokerLink, 2)}
"""Link kind: its class, and the subscription QoS that makes the driver pick it."""

LINKS_AND_PROTOCOLS = [(link, protocol) for link in LINKS for protocol in ("3.1.1", "5")]


def driver_config(broker: LocalBroker, link: str, **keys: Any) -> Any:
    _, qos = LINKS[link]
    return mqtt_config(
        broker.port, [{"topic": "tele/+/SENSOR", "qos": qos, "parse": {"format": "raw"}}], **keys
    )


@contextmanager
def subscribed(broker: LocalBroker, topic: str) -> Iterator[Subscriber]:
    subscriber = Subscriber(broker.host, broker.port, topic).start()
    try:
        yield subscriber
    finally:
        subscriber.stop()


@pytest.mark.parametrize(("link", "protocol"), LINKS_AND_PROTOCOLS)
def test_a_published_message_reaches_a_device(
    broker: LocalBroker, link: str, protocol: str
) -> None:
    async def scenario() -> None:
        config = driver_config(broker, link, protocol=protocol)
        with subscribed(broker, "cmnd/#") as plug:
            async with mqtt_on(config, Probe()) as driver:
                assert isinstance(driver.link, LINKS[link][0])
                await driver.publish("cmnd/plug1/POWER", b"ON")
                await driver.publish("cmnd/plug1/POWER", b"OFF", qos=0)
                await eventually(lambda: len(plug.snapshot()) == 2, "both messages")
                assert plug.snapshot() == [
                    Received("cmnd/plug1/POWER", b"ON", False, 1),
                    Received("cmnd/plug1/POWER", b"OFF", False, 0),
                ]
                # Retained: a device that subscribes later still gets it, flagged so.
                await driver.publish("zigbee2mqtt/lamp/set", b'{"state": "ON"}', retain=True)
                with subscribed(broker, "zigbee2mqtt/#") as lamp:
                    await eventually(lambda: len(lamp.snapshot()) == 1, "the retained message")
                    assert lamp.snapshot() == [
                        Received("zigbee2mqtt/lamp/set", b'{"state": "ON"}', True, 1)
                    ]
                assert driver.health.counters == {"published": 3}
                assert driver.health.state is DriverState.RUNNING

    asyncio.run(scenario())


@pytest.mark.parametrize("link", sorted(LINKS))
def test_publishing_while_the_broker_is_down_is_an_action_error(
    broker: LocalBroker, link: str
) -> None:
    async def scenario() -> None:
        async with mqtt_on(driver_config(broker, link), Probe()) as driver:
            broker.stop()
            await eventually(
                lambda: driver.health.state is DriverState.RECONNECTING, "RECONNECTING"
            )
            with pytest.raises(
                ActionError, match=rf"site: not connected to 127\.0\.0\.1:{broker.port}$"
            ):
                await driver.publish("cmnd/plug1/POWER", b"ON")
            assert "published" not in driver.health.counters
            broker.start()
            await eventually(lambda: driver.health.state is DriverState.RUNNING, "back")
            await driver.publish("cmnd/plug1/POWER", b"ON")
            assert driver.health.counters == {"published": 1}

    asyncio.run(scenario())


@pytest.mark.parametrize("link", sorted(LINKS))
def test_no_puback_in_time_is_an_action_error(broker: LocalBroker, link: str) -> None:
    async def scenario() -> None:
        async with mqtt_on(driver_config(broker, link), Probe()) as driver:
            driver.publish_timeout = 0.2
            assert broker.process is not None
            os.kill(broker.process.pid, signal.SIGSTOP)  # alive to TCP, answering nothing
            try:
                with pytest.raises(ActionError, match=r"no PUBACK from .* within 0\.2 s"):
                    await driver.publish("cmnd/plug1/POWER", b"ON")
            finally:
                os.kill(broker.process.pid, signal.SIGCONT)
            # The late PUBACK does not upset the connection: the next publish goes through.
            driver.publish_timeout = 10.0
            await driver.publish("cmnd/plug1/POWER", b"OFF")
            assert driver.health.counters == {"published": 1}
            assert driver.connects == 1

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("topic", "qos", "message"),
    [
        ("cmnd/+/POWER", 1, "has a wildcard"),
        ("cmnd/#", 1, "has a wildcard"),
        ("", 1, "the topic is empty"),
        ("cmnd/a\0b", 1, "NUL"),
        ("cmnd/plug1/POWER", 2, "QoS 2: actions publish at QoS 0 or 1"),
    ],
)
def test_a_topic_it_cannot_publish_to_is_refused(
    broker: LocalBroker, topic: str, qos: int, message: str
) -> None:
    async def scenario() -> None:
        async with mqtt_on(driver_config(broker, "wire"), Probe()) as driver:
            with pytest.raises(ActionRefused, match=message) as caught:
                await driver.publish(topic, b"ON", qos=qos)
            assert caught.value.reason == "bad_arguments"
            assert driver.health.counters == {}

    asyncio.run(scenario())


@pytest.mark.parametrize("link", sorted(LINKS))
def test_concurrent_publishes_each_wait_for_their_own_puback(
    broker: LocalBroker, link: str
) -> None:
    async def scenario() -> None:
        with subscribed(broker, "cmnd/#") as plugs:
            async with mqtt_on(driver_config(broker, link), Probe()) as driver:
                await asyncio.gather(
                    *(driver.publish(f"cmnd/plug{n}/POWER", b"ON") for n in range(50))
                )
                assert driver.health.counters == {"published": 50}
                await eventually(lambda: len(plugs.snapshot()) == 50, "all 50 messages")
        assert sorted(m.topic for m in plugs.snapshot()) == sorted(
            f"cmnd/plug{n}/POWER" for n in range(50)
        )

    asyncio.run(scenario())
