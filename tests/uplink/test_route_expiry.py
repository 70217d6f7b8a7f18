"""Route expiry (``publish: {expire_after: ...}``): a reading not worth sending late is
dropped and counted when the uplink comes back, never delivered late; what is left of
its time travels as MQTT 5's Message Expiry Interval."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
from paho.mqtt.enums import MQTTProtocolVersion

from tests.support import Subscriber, assert_contiguous
from tests.uplink.away import away_then_back
from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker, free_port
from tidegate.event import new_event
from tidegate.outbox import Row
from tidegate.outbox.clock import ROUTE_EXPIRED, UPLINK_MAX_AGE
from tidegate.outbox.routing import route_topic, stored_topic
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing
from tidegate.pipeline import Gateway
from tidegate.timefmt import rfc3339
from tidegate.uplink.expiry import age_out


def row(row_id: int, topic: str, at: float | None) -> Row:
    payload = orjson.dumps({"value": 1} if at is None else {"time": rfc3339(at), "value": 1})
    return Row(row_id, route_topic(topic), 1, False, payload, 1)


def test_age_out_judges_each_event_by_its_time() -> None:
    now = 1_800_000_000.0
    hourly = stored_topic("t/a", expire_after=3600)
    rows = [
        row(1, hourly, now - 7200),  # two hours old: past it
        row(2, hourly, now - 600),  # ten minutes: 50 minutes left
        row(3, "t/b", now - 7200),  # a route without expiry: never
        row(4, hourly, None),  # no readable time: sent, never lost
    ]
    aged = age_out(rows, now)
    assert aged.expired == [0]
    assert aged.remaining == {2: 3000}


def test_an_uplinks_max_event_age_gives_up_what_no_route_expires() -> None:
    now = 1_800_000_000.0
    hourly = stored_topic("t/a", expire_after=3600)
    rows = [
        row(1, hourly, now - 7200),  # past its route's hour: expired for every uplink
        row(2, hourly, now - 600),  # 50 minutes left by the route, 20 by the uplink
        row(3, "t/b", now - 7200),  # no route expiry, but older than the uplink takes
        row(4, "t/b", now - 60),
    ]
    aged = age_out(rows, now, max_event_age=1800)
    assert (aged.expired, aged.too_old) == ([0], [2])
    assert aged.remaining == {2: 1200, 4: 1740}


def test_a_route_header_keeps_the_uplinks_and_the_expiry() -> None:
    topic = route_topic(stored_topic("site/x", ["local", "cloud"], 90))
    assert topic == "site/x"
    assert getattr(topic, "uplinks", None) == {"cloud", "local"}
    assert getattr(topic, "expire_after", None) == 90
    assert route_topic("site/x") == "site/x" and not hasattr(route_topic("site/x"), "uplinks")


def test_stale_readings_are_dropped_when_the_broker_comes_back(
    tmp_path: Path, broker: LocalBroker
) -> None:
    port = free_port()  # the broker's way in, opened later: it is away until then
    received = Subscriber(
        broker.host, broker.port, "tidegate/ex/#", protocol=MQTTProtocolVersion.MQTTv5
    ).start()
    gateway = Gateway(
        load_config_text(f"""
gateway: {{id: ex, data_dir: {tmp_path / "data"}}}
mqtt:
  host: 127.0.0.1
  port: {port}
  protocol: "5"
  reconnect: {{initial_delay: 0.05s, max_delay: 0.1s}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: fast
    type: sim
    signals: [{{name: a, kind: counter, rate: 100}}]
  - name: slow
    type: sim
    signals: [{{name: b, kind: counter, rate: 100}}]
rules:
  - name: fresh-only
    match: {{source: fast}}
    publish: {{expire_after: 1s}}
""")
    )
    publisher = gateway.publisher
    assert publisher is not None
    try:
        opened_at = away_then_back(
            gateway,
            port,
            broker.port,
            backlog=400,  # two seconds of readings pile up while the broker is away
            back=lambda: (
                publisher.status.events_expired > 0
                and sum(e["source"] == "fast" for e in received.events()) >= 50
            ),
            what="stale readings dropped and fresh ones delivered",
        )
    finally:
        received.stop()
    fast = [m for m in received.snapshot() if "/fast/" in m.topic]
    slow = [m for m in received.snapshot() if "/slow/" in m.topic]
    # Nothing of the expiring route arrived late: each reading was under a second old
    # when it was packed, which was after the way to the broker opened.
    times = [datetime.fromisoformat(orjson.loads(m.payload)["time"]).timestamp() for m in fast]
    assert times and min(times) >= opened_at - 1.0
    assert all(m.message_expiry is not None and m.message_expiry <= 1 for m in fast)
    # The other route lost nothing, and carries no expiry.
    assert_contiguous([orjson.loads(m.payload) for m in slow])
    assert all(m.message_expiry is None for m in slow)
    # Every dropped reading is counted, once.
    expired = publisher.status.events_expired
    assert expired >= 50
    assert gateway.outbox.stats.drops[ROUTE_EXPIRED] == expired


def test_one_uplinks_max_event_age_drops_from_the_outbox_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db", "gw")
    box.open()
    try:
        box.put([Outgoing(new_event("s", "x", float(i)), "t", 1, False) for i in range(3)])
        rows = box.take(10)
        assert box.drop_route_expired([r.id for r in rows[:2]], UPLINK_MAX_AGE) == 2
        assert box.stats.drops[UPLINK_MAX_AGE] == 2
        assert box.stats.depth == 1
        assert box.stats.acked == 0  # a drop, not a delivery
    finally:
        box.close()
