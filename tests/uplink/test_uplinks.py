"""Several uplinks on one outbox, against real Mosquitto brokers: one down for the whole
run while the other delivers everything; the backlog it missed delivered to it later
from the one stored copy; rules routing to one uplink; each uplink under its prefix."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.mqtt.support import FreezableProxy, until
from tests.outbox.stored import stored_events
from tests.support import Subscriber, assert_contiguous, seqs_by_source, wait_until
from tests.uplink.away import away_then_back
from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker, free_port
from tidegate.errors import ConfigError
from tidegate.ops.metrics import prometheus_text
from tidegate.ops.status import GatewayMonitor, render_status
from tidegate.outbox.admin import inspect as admin
from tidegate.pipeline import Gateway

SIM = """
drivers:
  - name: s1
    type: sim
    signals: [{name: n, kind: counter, rate: 200}]
"""


def uplinks_config(tmp_path: Path, cloud_port: int, local_port: int, extra: str = "") -> str:
    return f"""
gateway: {{id: up, data_dir: {tmp_path / "data"}}}
uplinks:
  - name: cloud
    host: 127.0.0.1
    port: {cloud_port}
    topic_prefix: cloud/{{gateway}}
    reconnect: {{initial_delay: 0.05s, max_delay: 0.2s}}
  - name: local
    host: 127.0.0.1
    port: {local_port}
    reconnect: {{initial_delay: 0.05s, max_delay: 0.2s}}
buffer: {{commit_interval: 20ms}}
{extra}"""


def run(gateway: Gateway, until_done: object) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        try:
            await until_done()  # type: ignore[operator]
        finally:
            stop.set()
            await task

    asyncio.run(main())


def stored_count(tmp_path: Path) -> int:
    """Events the gateway's outbox file still holds."""
    db = sqlite3.connect(tmp_path / "data" / "outbox.db")
    try:
        return len(stored_events(db))
    finally:
        db.close()


def test_an_uplink_down_for_the_whole_run_holds_back_nothing_and_loses_nothing(
    tmp_path: Path, broker: LocalBroker
) -> None:
    cloud_port = free_port()  # nothing listens there: the cloud is down all run
    local = Subscriber(broker.host, broker.port, "tidegate/up/#").start()
    gateway = Gateway(load_config_text(uplinks_config(tmp_path, cloud_port, broker.port) + SIM))
    cloud_pub, local_pub = gateway.publishers
    try:

        async def delivering() -> None:
            await until(lambda: local.count() >= 300, 20, "300 events at the local broker")
            assert not cloud_pub.status.connected and cloud_pub.status.last_error
            # The status document, its text and the metrics show each uplink, and what
            # waits for the cloud.
            assert gateway.publisher is cloud_pub
            doc = await GatewayMonitor(gateway).status()
            by_name = {u["name"]: u for u in doc["uplinks"]}
            assert by_name["cloud"]["connected"] is False and by_name["cloud"]["waiting"] > 0
            assert by_name["local"]["connected"] is True
            text = render_status(doc)
            assert f"uplink cloud  127.0.0.1:{cloud_port}" in text and "uplink local" in text
            assert 'tidegate_uplink_waiting_events{uplink="cloud"}' in prometheus_text(doc)

        run(gateway, delivering)
        wait_until(
            lambda: local.count() >= local_pub.status.events_delivered,
            5,
            "every acknowledged event at the local subscriber",
        )
    finally:
        local.stop()
    first_run = local.events()
    assert_contiguous(first_run)
    accepted = gateway.outbox.stats.accepted
    assert local_pub.status.events_delivered >= 300
    # Nothing was deleted: the cloud has none of them yet.
    assert stored_count(tmp_path) == accepted
    # `tidegate buffer stats` says what each uplink still has to send.
    path = tmp_path / "data" / "outbox.db"
    handle = admin.open_for_reading(path)
    try:
        by_uplink = admin.read_stats(handle, path).by_uplink
    finally:
        handle.close()
    assert by_uplink["cloud"] == accepted
    assert by_uplink["local"] < 200  # at most what was in flight at the stop (1 s of events)

    # The cloud comes back (a broker on its port), the gateway starts again.
    cloud_broker = LocalBroker(tmp_path / "cloud", port=cloud_port)
    cloud_broker.start()
    cloud = Subscriber(cloud_broker.host, cloud_broker.port, "cloud/up/#").start()
    local = Subscriber(broker.host, broker.port, "tidegate/up/#").start()
    gateway = Gateway(load_config_text(uplinks_config(tmp_path, cloud_port, broker.port) + SIM))
    try:

        async def caught_up() -> None:
            await until(
                lambda: len(cloud.events()) >= accepted + 100, 30, "the backlog at the cloud"
            )

        run(gateway, caught_up)
    finally:
        cloud.stop()
        local.stop()
        cloud_broker.kill()
    at_cloud = cloud.events()
    # The cloud got the first run's backlog from its beginning, under its own prefix.
    assert_contiguous(at_cloud)
    assert min(e["seq"] for e in at_cloud) == 1
    assert all(m.topic.startswith("cloud/up/") for m in cloud.snapshot())
    # The local uplink's position was kept: nothing of the first run is sent to it again.
    again = set(seqs_by_source(local.events()).get("s1", [])) & {e["seq"] for e in first_run}
    assert not again


def test_an_uplink_whose_link_goes_silent_is_noticed_while_the_other_delivers(
    tmp_path: Path, broker: LocalBroker
) -> None:
    """A pulled cable on the cloud's link (no FIN, no RST: a frozen proxy): its uplink
    notices by keep-alive within 1.5 keep-alives and a little, and the local uplink
    delivers all along."""
    keepalive = 5.0  # the least the config takes
    local = Subscriber(broker.host, broker.port, "tidegate/up/#").start()

    async def main() -> tuple[float, int, int]:
        async with FreezableProxy(broker.host, broker.port) as proxy:
            gateway = Gateway(
                load_config_text(
                    f"""
gateway: {{id: up, data_dir: {tmp_path / "data"}}}
uplinks:
  - {{name: local, host: 127.0.0.1, port: {broker.port}}}
  - name: cloud
    host: 127.0.0.1
    port: {proxy.port}
    topic_prefix: cloud/{{gateway}}
    keepalive: {keepalive}s
    reconnect: {{initial_delay: 0.5s, max_delay: 1s}}
buffer: {{commit_interval: 20ms}}
{SIM}"""
                )
            )
            local_pub, cloud_pub = gateway.publishers
            stop = asyncio.Event()
            task = asyncio.create_task(gateway.run(stop))
            try:
                await until(lambda: cloud_pub.status.events_delivered > 0, 15, "the cloud")
                proxy.freeze()
                frozen_at = time.monotonic()
                before = local.count()
                await until(
                    lambda: not cloud_pub.status.connected,
                    1.5 * keepalive + 3,
                    "the silent link noticed",
                )
                noticed = time.monotonic() - frozen_at
                during = local.count() - before
                return noticed, during, local_pub.status.events_delivered
            finally:
                stop.set()
                await task

    try:
        noticed, during, delivered = asyncio.run(main())
    finally:
        local.stop()
    # Not sooner than a keep-alive (less what was in flight when the link froze: it was
    # the keep-alive that noticed, not chance),
    # not later than 1.5 of them and a little.
    assert keepalive - 0.5 <= noticed <= 1.5 * keepalive + 3, noticed
    assert during >= 200 * keepalive * 0.5  # the local uplink went on (200 events/s)
    assert delivered >= during


def test_a_rule_routes_to_one_uplink(tmp_path: Path, broker: LocalBroker) -> None:
    cloud_broker = LocalBroker(tmp_path / "cloud")
    cloud_broker.start()
    cloud = Subscriber(cloud_broker.host, cloud_broker.port, "#").start()
    local = Subscriber(broker.host, broker.port, "#").start()
    rules = """
drivers:
  - name: s1
    type: sim
    signals: [{name: a, kind: counter, rate: 100}, {name: b, kind: counter, rate: 100}]
rules:
  - name: a-local
    match: {name: a}
    publish: {uplink: local}
"""
    gateway = Gateway(
        load_config_text(uplinks_config(tmp_path, cloud_broker.port, broker.port) + rules)
    )
    try:

        async def both_flowing() -> None:
            await until(lambda: len(cloud.events()) >= 100, 20, "events at the cloud")
            await until(
                lambda: sum(e["name"] == "a" for e in local.events()) >= 100, 20, "a at local"
            )

        run(gateway, both_flowing)
    finally:
        cloud.stop()
        local.stop()
        cloud_broker.kill()
    assert {e["name"] for e in cloud.events()} == {"b"}
    assert {e["name"] for e in local.events()} == {"a", "b"}
    # What is left in the outbox is at most what was in flight at the stop: the events
    # routed to local alone did not wait for the cloud.
    assert stored_count(tmp_path) < 100


def test_an_uplink_back_after_its_max_event_age_is_sent_only_fresh_events(
    tmp_path: Path, broker: LocalBroker
) -> None:
    """The cloud is away for longer than its `max_event_age`: when it is back it gets
    the fresh events only; the local uplink got everything; what the cloud gave up and
    local delivered leaves the outbox."""
    cloud_port = free_port()
    cloud_broker = LocalBroker(tmp_path / "cloud")
    cloud_broker.start()
    cloud = Subscriber(cloud_broker.host, cloud_broker.port, "#").start()
    local = Subscriber(broker.host, broker.port, "tidegate/up/#").start()
    text = f"""
gateway: {{id: up, data_dir: {tmp_path / "data"}}}
uplinks:
  - {{name: local, host: 127.0.0.1, port: {broker.port}}}
  - name: cloud
    host: 127.0.0.1
    port: {cloud_port}
    max_event_age: 1s
    reconnect: {{initial_delay: 0.05s, max_delay: 0.1s}}
buffer: {{commit_interval: 20ms}}
{SIM}"""
    gateway = Gateway(load_config_text(text))
    local_pub, cloud_pub = gateway.publishers
    try:
        opened_at = away_then_back(
            gateway,
            cloud_port,
            cloud_broker.port,
            backlog=400,
            back=lambda: len(cloud.events()) >= 100,
            what="fresh events at the cloud",
        )
    finally:
        cloud.stop()
        local.stop()
        cloud_broker.kill()
    at_cloud = cloud.events()
    times = [datetime.fromisoformat(e["time"]).timestamp() for e in at_cloud]
    assert min(times) >= opened_at - 1.0
    assert cloud_pub.status.events_too_old >= 150
    assert_contiguous(local.events())
    assert local_pub.status.events_delivered >= cloud_pub.status.events_too_old
    assert stored_count(tmp_path) < 200  # given up by one, delivered by the other: gone


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "mqtt: {host: a}\nuplinks: [{name: x, host: b}]\n",
            "give `mqtt:` (one uplink) or `uplinks:` (several, each with a name), not both",
        ),
        (
            "uplinks: [{name: x, host: a}, {name: x, host: b}]\n",
            "up.yaml:1:38: uplinks[1].name: duplicate uplink name 'x' (first used by uplinks[0])",
        ),
        (
            "uplinks: [{name: x, host: a, client_id: c}, {name: y, host: a, client_id: c}]\n",
            "uplinks 'x' and 'y' would connect to a:1883 with the same client id",
        ),
        (
            "uplinks: [{name: x, host: a}]\nrules: [{name: r, publish: {uplink: [x, cloud]}}]\n",
            "up.yaml:2:37: rules[0].publish.uplink: no uplink named 'cloud' (the uplinks are x)",
        ),
    ],
)
def test_uplink_config_mistakes_are_said_where_they_are(body: str, message: str) -> None:
    text = body + "drivers: [{name: s, type: sim, signals: [{name: t, kind: sine, rate: 1}]}]\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "up.yaml")
    assert any(message in m for m in caught.value.messages), caught.value.messages


def test_two_uplinks_on_one_broker_get_client_ids_of_their_own() -> None:
    config = load_config_text(
        "gateway: {id: gw}\nuplinks: [{name: x, host: a}, {name: y, host: a}, "
        "{name: z, host: a, client_id: zed}]\n"
        "drivers: [{name: s, type: sim, signals: [{name: t, kind: sine, rate: 1}]}]\n"
    )
    ids = [config.uplink_client_id(u) for u in config.all_uplinks()]
    assert ids == ["tidegate-gw", "tidegate-gw-y", "zed"]


def test_the_mqtt_section_is_one_uplink_named_default() -> None:
    config = load_config_text(
        "mqtt: {host: a, qos: 0}\n"
        "drivers: [{name: s, type: sim, signals: [{name: t, kind: sine, rate: 1}]}]\n"
    )
    (uplink,) = config.all_uplinks()
    assert (uplink.name, uplink.host, uplink.qos) == ("default", "a", 0)
