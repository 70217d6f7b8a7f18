"""Fallback brokers: the policy alone, then a gateway whose first broker is down
failing over to the second, and moving back once the first is up, losing nothing."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from tests.mqtt.support import until
from tests.support import (
    Subscriber,
    assert_contiguous,
    assert_same_ids_for_duplicates,
    wait_until,
)
from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker, free_port
from tidegate.pipeline import Gateway
from tidegate.uplink.brokers import BrokerList

A, B, C = ("a", 1883), ("b", 1883), ("c", 8883)


def test_it_fails_over_after_repeated_failures_and_wraps_around() -> None:
    brokers = BrokerList([A, B, C], failover_after=3, return_after=60)
    assert [brokers.failed() for _ in range(2)] == [None, None]
    assert brokers.current == A
    assert brokers.failed() == "broker a:1883 unavailable 3 times in a row: failing over to b:1883"
    assert brokers.current == B and brokers.on_fallback
    brokers.failed()
    brokers.connected()  # a success starts the count again
    assert [brokers.failed() for _ in range(2)] == [None, None] and brokers.current == B
    brokers.failed()
    assert brokers.current == C
    for _ in range(3):
        brokers.failed()
    assert brokers.current == A and not brokers.on_fallback  # from the last, the first


def test_moving_back_is_one_try() -> None:
    brokers = BrokerList([A, B], failover_after=2, return_after=60)
    brokers.failed(), brokers.failed()
    assert brokers.current == B
    brokers.connected()
    assert brokers.go_back() == "broker a:1883 answers again: moving back to it from b:1883"
    assert brokers.current == A
    # The first broker fails at once: straight back, not after two more failures.
    assert brokers.failed() == "broker a:1883 still unavailable: back to b:1883"
    assert brokers.current == B
    brokers.go_back()
    brokers.connected()  # it worked: the first again, for good
    assert brokers.current == A
    assert [brokers.failed()] == [None]


def test_a_single_broker_never_moves() -> None:
    brokers = BrokerList([A], failover_after=1, return_after=60)
    assert [brokers.failed() for _ in range(5)] == [None] * 5
    with pytest.raises(ValueError, match="needs a broker"):
        BrokerList([], failover_after=1, return_after=60)


def test_fallback_ports_default_by_tls() -> None:
    config = load_config_text(
        "mqtt: {host: a, port: 1999, tls: {}, fallbacks: [{host: b}, {host: c, port: 1884}]}\n"
        "drivers: [{name: s, type: sim, signals: [{name: t, kind: sine, rate: 1}]}]"
    )
    assert config.mqtt is not None
    assert config.mqtt.broker_addresses() == [("a", 1999), ("b", 8883), ("c", 1884)]


async def forward(port: int, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
    """A TCP forwarder to the broker on ``port``: the first broker's address, which
    exists only once the test opens it (before, nothing listens there)."""
    broker_in, broker = await asyncio.open_connection("127.0.0.1", port)

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    await asyncio.gather(pipe(client_in, broker), pipe(broker_in, client))


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
