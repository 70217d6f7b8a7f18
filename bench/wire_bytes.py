"""Bytes on the wire per event, for each message format: what a metered link bills.

The gateway runs in this process with a sim driver (two signals, ``N`` events,
sensor-like JSON of ~170 B) and publishes, QoS 1, through a counting TCP proxy on
loopback to a private Mosquitto. Each row counts everything both ways from the
connection on (CONNECT, the status message, PUBLISH, PUBACK, pings) and divides by
the events; TLS would add its record overhead on top (~22-29 B per record, a record
per write: about one per message at one event per message).

Scenarios: each format (``mqtt.format``) at one event per message and at 100 (where
it batches), on MQTT 5 with topic aliases (the default), without them, and on MQTT
3.1.1. ``homeassistant`` includes its discovery configs (two signals here: a
long-running gateway sends them once per connection).

Run: ``./dev bench wire_bytes [--events N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import NamedTuple, get_args

from tidegate.config.loader import load_config_text
from tidegate.config.schema import FormatName
from tidegate.demo.local_broker import LocalBroker
from tidegate.pipeline import Gateway

FORMATS: tuple[str, ...] = get_args(FormatName)
ONE_PER_MESSAGE = frozenset({"homeassistant", "cloudevents_binary"})
"""Formats that only send one event per message."""
MQTT_5_ONLY = frozenset({"cloudevents_binary"})
LINKS = (("5", True), ("5", False), ("3.1.1", False))


class CountingProxy:
    """A TCP proxy on loopback in front of the broker that counts the bytes each way."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.up = self.down = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        broker_in, broker = await asyncio.open_connection("127.0.0.1", self.upstream)
        for source, sink, up in ((client_in, broker, True), (broker_in, client, False)):
            task = asyncio.ensure_future(self._pipe(source, sink, up))
            self._tasks.add(task)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, up: bool
    ) -> None:
        try:
            while data := await source.read(65536):
                if up:
                    self.up += len(data)
                else:
                    self.down += len(data)
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()


class Scenario(NamedTuple):
    fmt: str
    per: int
    protocol: str
    aliases: bool


async def measure(
    broker_port: int, data_dir: Path, events: int, scenario: Scenario
) -> tuple[float, float]:
    """Bytes up and down per event."""
    fmt, per, protocol, aliases = scenario
    async with CountingProxy(broker_port) as proxy:
        cfg = load_config_text(
            f"""
gateway: {{id: farm-7, data_dir: {data_dir}, log_level: warning}}
mqtt: {{host: 127.0.0.1, port: {proxy.port}, protocol: "{protocol}", format: {fmt},
       events_per_message: {per}, topic_aliases: {str(aliases).lower()}}}
drivers:
  - name: greenhouse
    type: sim
    signals:
      - {{name: temperature, kind: random_walk, rate: 5000, count: {events // 2}, unit: "°C"}}
      - {{name: door_open, kind: counter, rate: 5000, count: {events - events // 2}}}
"""
        )
        gateway = Gateway(cfg)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        publisher = gateway.publisher
        assert publisher is not None
        while publisher.status.events_delivered < events:
            if task.done():
                task.result()
                raise RuntimeError("the gateway stopped early")
            await asyncio.sleep(0.01)
        stop.set()
        await task
        return proxy.up / events, proxy.down / events


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench wire_bytes")
    parser.add_argument("--events", type=int, default=4000)
    args = parser.parse_args(argv)
    rows: list[tuple[Scenario, float, float]] = []
    scenarios = [
        Scenario(fmt, per, protocol, aliases)
        for fmt in FORMATS
        for per in (1, 100)
        for protocol, aliases in LINKS
        if (per == 1 or fmt not in ONE_PER_MESSAGE) and (protocol == "5" or fmt not in MQTT_5_ONLY)
    ]
    with (
        tempfile.TemporaryDirectory(prefix="tidegate-wire-bytes-") as tmp,
        LocalBroker(Path(tmp) / "broker") as broker,
    ):
        for n, scenario in enumerate(scenarios):
            data_dir = Path(tmp) / f"run{n}"
            up, down = asyncio.run(measure(broker.port, data_dir, args.events, scenario))
            rows.append((scenario, up, down))
    print(
        f"bytes on the wire per event, QoS 1, {args.events:,} sim events (two topics, "
        "~170 B of JSON each), through a counting proxy to a local Mosquitto"
    )
    header = ("format", "ev/msg", "MQTT", "aliases", "up B/ev", "down B/ev", "total")
    print("{:<18} {:>6} {:>6} {:>8} {:>8} {:>9} {:>7}".format(*header))
    for (fmt, per, protocol, aliases), up, down in rows:
        print(
            f"{fmt:<18} {per:>6} {protocol:>6} {'yes' if aliases else 'no':>8} "
            f"{up:>8.1f} {down:>9.1f} {up + down:>7.1f}"
        )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
