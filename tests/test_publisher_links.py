"""Bad links are not refusals: a lost connection never makes an event poison.

A real Mosquitto behind a TCP proxy (``tests.flaky_link.FlakyLink``) that cuts
the first connections on purpose, then lets them through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.flaky_link import FlakyLink
from tests.support import (
    Subscriber,
    assert_contiguous,
    run_in_process,
    wait_until,
)
from tidegate.local_broker import LocalBroker
from tidegate.pipeline import Gateway
from tidegate.publish_refusals import REFUSALS_BEFORE_POISON

EVENTS = 40
DROPS = 8
"""More connections lost with the same message in flight than ever made it poison."""
PACKET_TOO_LARGE = 0x95
SERVER_BUSY = 0x89


def events_only(topic: str) -> bool:
    return not topic.endswith("/status")


def config(data_dir: Path, port: int) -> str:
    return f"""
gateway: {{id: links, data_dir: {data_dir}}}
mqtt: {{host: 127.0.0.1, port: {port}, reconnect_min: 20ms, reconnect_max: 100ms}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: s
    type: sim
    signals: [{{name: n, kind: counter, rate: 2000, count: {EVENTS}}}]
"""


def settled(gateway: Gateway) -> bool:
    """Every event either delivered or dead-lettered."""
    status = gateway.publisher.status if gateway.publisher else None
    return status is not None and status.events_delivered + status.events_rejected >= EVENTS


def run_through(link: FlakyLink, data_dir: Path) -> Gateway:
    link.start()
    try:
        return run_in_process(config(data_dir, link.port), settled, timeout=60)
    finally:
        link.stop()


def test_a_link_that_drops_every_new_connection_loses_time_not_events(
    tmp_path: Path, broker: LocalBroker
) -> None:
    # Each connection is cut as the first event goes out: the same message is
    # in flight every time, which a broker's refusal would look like, were it
    # not for the reason code only a broker sends.
    sub = Subscriber(broker.host, broker.port, "tidegate/links/#").start()
    link = FlakyLink(broker.host, broker.port, drops=DROPS, watch=events_only)
    try:
        gateway = run_through(link, tmp_path / "d")
        assert link.dropped == DROPS
        assert gateway.publisher is not None
        assert gateway.publisher.status.events_rejected == 0
        assert gateway.outbox.stats.dead_letters == 0
        wait_until(lambda: sub.count() >= EVENTS, 10, "every event at the subscriber")
    finally:
        sub.stop()
    assert_contiguous(sub.events(), {"s": EVENTS})


def test_a_disconnect_that_does_not_refuse_the_message_is_a_lost_connection(
    tmp_path: Path, broker: LocalBroker
) -> None:
    # "Server busy" says nothing against the message in flight.
    link = FlakyLink(
        broker.host, broker.port, drops=DROPS, watch=events_only, refuse_with=SERVER_BUSY
    )
    gateway = run_through(link, tmp_path / "d")
    assert link.dropped == DROPS
    assert gateway.outbox.stats.dead_letters == 0
    assert gateway.publisher is not None
    assert gateway.publisher.status.events_delivered == EVENTS


@pytest.mark.parametrize(
    ("refusals", "dead"), [(REFUSALS_BEFORE_POISON - 1, 0), (REFUSALS_BEFORE_POISON, 1)]
)
def test_a_message_the_broker_refuses_again_and_again_is_dead_lettered(
    tmp_path: Path,
    broker: LocalBroker,
    caplog: pytest.LogCaptureFixture,
    refusals: int,
    dead: int,
) -> None:
    # DISCONNECT "packet too large" each time the first event is sent: the broker
    # refuses that message. Enough times in a row, and it goes to the dead letters;
    # the others are delivered.
    link = FlakyLink(
        broker.host,
        broker.port,
        drops=refusals,
        watch=events_only,
        refuse_with=PACKET_TOO_LARGE,
    )
    gateway = run_through(link, tmp_path / "d")
    assert link.dropped == refusals
    assert gateway.outbox.stats.dead_letters == dead
    assert gateway.publisher is not None
    assert gateway.publisher.status.events_rejected == dead
    assert gateway.publisher.status.events_delivered == EVENTS - dead
    reasons = [r.getMessage() for r in caplog.records if "dead letters" in r.getMessage()]
    assert len(reasons) == dead
    if dead:
        assert "refused this message" in reasons[0] and "Packet too large" in reasons[0]
