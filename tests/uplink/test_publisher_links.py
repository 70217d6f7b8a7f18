"""Bad links are not refusals: a lost connection never makes an event poison.

A real Mosquitto behind a TCP proxy (``tests.uplink.flaky_link.FlakyLink``) that cuts
the first connections on purpose, then lets them through; it also plays the
broker's refusals (a DISCONNECT or a PUBACK with a reason code).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import (
    Subscriber,
    assert_contiguous,
    run_in_process,
    wait_until,
)
from tests.uplink.flaky_link import FlakyLink
from tidegate.demo.local_broker import LocalBroker
from tidegate.ops.metrics import prometheus_text
from tidegate.ops.status import GatewayMonitor
from tidegate.pipeline import Gateway
from tidegate.uplink.refusals import REFUSALS_BEFORE_POISON, RefusalTracker

EVENTS = 40
DROPS = 8
"""More connections lost with the same message in flight than ever made it poison."""
PACKET_TOO_LARGE = 0x95
SERVER_BUSY = 0x89
NOT_AUTHORIZED = 0x87
QUOTA_EXCEEDED = 0x97


def events_only(topic: str) -> bool:
    return not topic.endswith("/status")


def config(data_dir: Path, port: int) -> str:
    return f"""
gateway: {{id: links, data_dir: {data_dir}}}
mqtt: {{host: 127.0.0.1, port: {port}, reconnect: {{initial_delay: 20ms, max_delay: 100ms}}}}
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


@pytest.mark.parametrize("reason", [SERVER_BUSY, NOT_AUTHORIZED, QUOTA_EXCEEDED])
def test_a_disconnect_that_does_not_refuse_the_message_is_a_lost_connection(
    tmp_path: Path, broker: LocalBroker, reason: int
) -> None:
    # "Server busy" says nothing against the message in flight; "not authorized"
    # and "quota exceeded" in a DISCONNECT are about the connection (revoked
    # credentials, throttling), not about whichever message happened to be first.
    link = FlakyLink(broker.host, broker.port, drops=DROPS, watch=events_only, refuse_with=reason)
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


def test_a_lost_connection_between_refusals_starts_the_count_again(
    tmp_path: Path, broker: LocalBroker
) -> None:
    # Refused, refused, lost, refused, refused: never three refusals in a row.
    plan: list[int | None] = [PACKET_TOO_LARGE] * (REFUSALS_BEFORE_POISON - 1)
    link = FlakyLink(broker.host, broker.port, watch=events_only, refuse_with=[*plan, None, *plan])
    gateway = run_through(link, tmp_path / "d")
    assert link.dropped == 2 * len(plan) + 1
    assert gateway.outbox.stats.dead_letters == 0
    assert gateway.publisher is not None
    assert gateway.publisher.status.events_delivered == EVENTS


def test_a_puback_saying_quota_exceeded_keeps_the_message_for_later(
    tmp_path: Path, broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    # A temporary limit, not a verdict on the message: it stays in the outbox and
    # goes again on a later connection; counted, and logged once, not per connection.
    sub = Subscriber(broker.host, broker.port, "tidegate/links/#").start()
    quotas = 3
    link = FlakyLink(
        broker.host, broker.port, drops=quotas, watch=events_only, puback_with=QUOTA_EXCEEDED
    )
    try:
        gateway = run_through(link, tmp_path / "d")
        assert gateway.outbox.stats.dead_letters == 0
        wait_until(lambda: sub.count() >= EVENTS, 10, "every event at the subscriber")
    finally:
        sub.stop()
    assert link.dropped == quotas
    assert gateway.publisher is not None
    status = gateway.publisher.status
    assert (status.events_rejected, status.events_delivered) == (0, EVENTS)
    assert status.quota_exceeded == quotas
    # Visible where an operator looks: `tidegate status` and the metrics.
    doc = GatewayMonitor(gateway).document()
    assert doc["broker"]["quota_exceeded"] == quotas
    assert f"tidegate_broker_quota_exceeded_total {quotas}" in prometheus_text(doc)
    assert status.connects == quotas + 1
    assert_contiguous(sub.events(), {"s": EVENTS})
    logged = [r.getMessage() for r in caplog.records if "quota" in r.getMessage().lower()]
    assert len(logged) == 1, logged
    assert "kept in the outbox" in logged[0], logged[0]


def test_reconnects_back_off_further_while_the_quota_stays_exceeded() -> None:
    # Each connection ended by "quota exceeded" backs off one step further, even
    # when it acknowledged other messages; the first ordinary one resets it.
    tracker = RefusalTracker()
    steps = []
    for over_quota in (True, True, True, False):
        tracker.connection_ended(True, None, over_quota=over_quota)
        steps.append((tracker.backoff_attempt(), bool(tracker.quota_note(1))))
    assert steps == [(1, True), (2, False), (3, False), (0, False)]
