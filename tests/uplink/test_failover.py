"""Fallback brokers: the policy alone, then a gateway whose first broker is down
failing over to the second, and moving back once the first is up, losing nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.mqtt.support import until
from tests.support import (
    Subscriber,
    assert_contiguous,
    assert_same_ids_for_duplicates,
    wait_until,
)
from tests.uplink.away import forward
from tidegate.backoff import Backoff, ReconnectSection
from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker, free_port
from tidegate.pipeline import Gateway
from tidegate.uplink.brokers import BrokerList

A, B, C = ("a", 1883), ("b", 1883), ("c", 8883)


def brokers(addresses: list[tuple[str, int]], failover_after: int) -> BrokerList:
    backoff = Backoff(ReconnectSection(initial_delay=1, max_delay=60, jitter=False))
    return BrokerList(addresses, failover_after=failover_after, return_after=60, backoff=backoff)


def test_it_fails_over_after_repeated_failures_and_wraps_around() -> None:
    plan = brokers([A, B, C], failover_after=3)
    assert [plan.failed("refused") for _ in range(2)] == [1.0, 2.0]  # the backoff's waits
    assert plan.current == A
    assert plan.failed("refused") == 0.0  # the third: the next broker, at once
    assert plan.current == B and plan.on_fallback
    plan.failed("refused")
    plan.connected()  # a success starts the count (and the backoff) again
    assert [plan.failed("refused") for _ in range(2)] == [1.0, 2.0] and plan.current == B
    assert plan.failed("refused") == 0.0 and plan.current == C
    delays = [plan.failed("refused") for _ in range(3)]
    assert plan.current == A and not plan.on_fallback  # from the last, the first
    assert delays == [4.0, 8.0, 16.0]  # round to the first: the backoff goes on growing


def test_brokers_all_down_are_not_tried_in_a_loop() -> None:
    plan = brokers([A, B], failover_after=1)
    delays = [plan.failed("refused") for _ in range(8)]
    # Straight to the second, then the first after a wait that grows: never two
    # attempts in a row without one.
    assert delays == [0.0, 1.0, 0.0, 2.0, 0.0, 4.0, 0.0, 8.0]


def test_moving_back_is_one_try() -> None:
    plan = brokers([A, B], failover_after=2)
    plan.failed("refused"), plan.failed("refused")
    assert plan.current == B
    plan.connected()
    plan.go_back()
    assert plan.current == A
    # The first broker fails at once: straight back, not after two more failures.
    assert plan.failed("refused") == 0.0
    assert plan.current == B
    plan.go_back()
    plan.connected()  # it worked: the first again, for good
    assert plan.current == A
    assert plan.failed("refused") == 1.0 and plan.current == A


def test_a_single_broker_never_moves() -> None:
    plan = brokers([A], failover_after=1)
    assert [plan.failed("refused") for _ in range(3)] == [1.0, 2.0, 4.0]
    assert plan.current == A
    with pytest.raises(ValueError, match="needs a broker"):
        brokers([], failover_after=1)


def test_fallback_ports_default_by_tls() -> None:
    config = load_config_text(
        "mqtt: {host: a, port: 1999, tls: {}, fallbacks: [{host: b}, {host: c, port: 1884}]}\n"
        "drivers: [{name: s, type: sim, signals: [{name: t, kind: sine, rate: 1}]}]"
    )
    assert config.mqtt is not None
    assert config.mqtt.broker_addresses() == [("a", 1999), ("b", 8883), ("c", 1884)]


def test_the_uplink_fails_over_and_moves_back_losing_nothing(
    tmp_path: Path, broker: LocalBroker
) -> None:
    first_port = free_port()  # the first broker's address: nothing listens there yet
    first = LocalBroker(tmp_path / "first")
    first.start()
    at_first = Subscriber(first.host, first.port, "tidegate/fo/#").start()
    at_second = Subscriber(broker.host, broker.port, "tidegate/fo/#").start()
    config = load_config_text(f"""
gateway: {{id: fo, data_dir: {tmp_path / "data"}}}
mqtt:
  host: 127.0.0.1
  port: {first_port}
  fallbacks: [{{host: 127.0.0.1, port: {broker.port}}}]
  failover_after: 2
  return_after: 0.2s
  reconnect: {{initial_delay: 0.05s, max_delay: 0.1s}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: s1
    type: sim
    signals: [{{name: n, kind: counter, rate: 200}}]
""")
    gateway = Gateway(config)
    publisher = gateway.publisher
    assert publisher is not None

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        opened: asyncio.Server | None = None
        try:
            # Failed over: delivered to the second.
            await until(lambda: len(at_second.events()) >= 20, 15, "events at the second broker")
            assert publisher.status.broker == f"127.0.0.1:{broker.port}"
            assert not at_first.events()
            # The first broker comes back: the uplink moves back to it.
            opened = await asyncio.start_server(
                lambda r, w: forward(first.port, r, w), "127.0.0.1", first_port
            )
            await until(lambda: len(at_first.events()) >= 20, 15, "events at the first again")
            assert publisher.status.broker == f"127.0.0.1:{first_port}"
        finally:
            stop.set()
            await task
            if opened is not None:
                opened.close()

    try:
        asyncio.run(main())
        delivered = publisher.status.events_delivered
        # Every acknowledged event is at one broker or the other (one in flight when
        # the uplink moved may be at both: at least once).
        wait_until(
            lambda: len({e["seq"] for e in at_first.events() + at_second.events()}) >= delivered,
            5,
            "every acknowledged event at a subscriber",
        )
    finally:
        at_first.stop()
        at_second.stop()
        first.kill()
    assert_contiguous(at_first.events() + at_second.events())
    assert_same_ids_for_duplicates(at_first.events() + at_second.events())
    # It signed off on the second broker before leaving: no stale "online" kept there.
    status = Subscriber(broker.host, broker.port, "tidegate/fo/status").start()
    wait_until(lambda: bool(status.snapshot()), 5, "the second broker's retained status")
    status.stop()
    assert [(m.payload, m.retain) for m in status.snapshot()] == [(b"offline", True)]


def test_a_first_broker_that_only_accepts_tcp_does_not_take_the_uplink_away(
    tmp_path: Path, broker: LocalBroker
) -> None:
    """A port that accepts connections but speaks no MQTT (a load balancer before a
    dead broker): the probe fails, and the uplink stays where it works."""
    accepted: list[int] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        gateway = Gateway(
            load_config_text(f"""
gateway: {{id: fo, data_dir: {tmp_path / "data"}}}
mqtt:
  host: 127.0.0.1
  port: {port}
  fallbacks: [{{host: 127.0.0.1, port: {broker.port}}}]
  failover_after: 1
  return_after: 0.1s
drivers:
  - name: s1
    type: sim
    signals: [{{name: n, kind: counter, rate: 50}}]
""")
        )
        publisher = gateway.publisher
        assert publisher is not None
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        try:
            await until(lambda: publisher.status.connected, 10, "the fallback connection")
            probes = len(accepted)
            await until(lambda: len(accepted) >= probes + 3, 10, "three probes of the first")
            assert publisher.status.connects == 1  # never left the fallback
            assert publisher.status.broker == f"127.0.0.1:{broker.port}"
        finally:
            stop.set()
            await task
            server.close()

    asyncio.run(main())
