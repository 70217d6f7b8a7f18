"""Bytes written to disk per event, and events/s, for `batch` and `fsync` durability.

The real ``Outbox`` is driven directly (no broker, no rules), as the gateway
drives it: commits of N events (``put``), then the same events taken and
acknowledged in groups of N (``take`` + ``ack``), then ``close`` (the final
checkpoint). Disk writes are ``/proc/self/io`` ``write_bytes``: what this
process made the kernel write to storage — the WAL, then the same pages again
when they are checkpointed into the database.

- accept B/ev: written while committing (WAL + the checkpoints that happen meanwhile);
- life B/ev: everything an event costs from acceptance to deletion after its ack.

N = 20 is the gateway at ~1,000 events/s with ``commit_interval: 20ms``; N = 1000
is ``commit_max_events`` under a burst.

A second table measures the real thing: ``tidegate run`` as a process, sim
sensors at ``--rate`` events/s publishing to a local Mosquitto, for
``--seconds``; ``/proc/<pid>/io`` write_bytes of the gateway process over
that time, divided by the events it committed meanwhile.

The files live in ``--dir`` (default /var/tmp: disk-backed, where /tmp may be a
tmpfs that writes nothing).

Run: ``./dev bench outbox_durability [--scale 1.0] [--rate 1000] [--seconds 8] [--dir PATH]``.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support import GatewayProcess, wait_until, write_config
from tidegate.demo.local_broker import LocalBroker
from tidegate.event import new_event
from tidegate.outbox import Durability
from tidegate.outbox.schema import ROW_OVERHEAD
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing

BATCHES = {1: 3_000, 20: 20_000, 100: 50_000, 1000: 100_000}
"""Events per commit -> events measured (before --scale)."""
SOURCES = ("greenhouse", "workshop", "meter", "door")


def io_write_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no write_bytes (not Linux?)")


def make_events(n: int, seed: int = 1) -> list[Outgoing]:
    """Readings like a sensor's: a float with a unit, four sources, two names each."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        source = SOURCES[i % len(SOURCES)]
        name = ("power", "temperature")[(i // len(SOURCES)) % 2]
        event = new_event(source, name, round(rng.uniform(0, 5000), 3), unit="W")
        out.append(Outgoing(event, f"tidegate/bench/{source}/{name}", 1, False))
    return out


@dataclass(frozen=True, slots=True)
class Measurement:
    durability: Durability
    per_commit: int
    events: int
    payload: float
    accept_rate: float
    accept_bytes: float
    life_bytes: float


def measure(directory: Path, durability: Durability, per_commit: int, n: int) -> Measurement:
    events = make_events(n)
    with tempfile.TemporaryDirectory(prefix="tidegate-durability-", dir=directory) as tmp:
        outbox = Outbox(Path(tmp) / "outbox.db", "bench", durability)
        outbox.open()
        io0 = io_write_bytes()
        t0 = time.perf_counter()
        for start in range(0, n, per_commit):
            outbox.put(events[start : start + per_commit])
        accept_seconds = time.perf_counter() - t0
        io1 = io_write_bytes()
        payload = (outbox.stats.bytes - n * ROW_OVERHEAD) / n
        cursors = [0, 0, 0]
        while rows := outbox.take(per_commit, cursors):
            cursors[rows[-1].priority] = rows[-1].id
            outbox.ack([r.id for r in rows])
        outbox.close()
        io2 = io_write_bytes()
    return Measurement(
        durability, per_commit, n, payload, n / accept_seconds, (io1 - io0) / n, (io2 - io0) / n
    )


@dataclass(frozen=True, slots=True)
class LiveMeasurement:
    durability: Durability
    commit_interval: str
    events: int
    seconds: float
    written: int


def _committed(db: Path) -> int:
    """Events committed so far (0 while the gateway is still creating the file)."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COALESCE(SUM(last_seq), 0) FROM sources").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def measure_live(
    directory: Path,
    port: int,
    durability: Durability,
    interval: str,
    *,
    rate: int,
    seconds: float,
) -> LiveMeasurement:
    with tempfile.TemporaryDirectory(prefix="tidegate-durability-", dir=directory) as tmp:
        work = Path(tmp)
        config = write_config(
            work / "gw.yaml",
            f"""
gateway: {{id: bench, data_dir: {work / "data"}, log_level: warning}}
mqtt: {{host: 127.0.0.1, port: {port}}}
buffer: {{commit_interval: {interval}, durability: {durability}}}
drivers:
  - name: meter
    type: sim
    signals:
      - {{name: power, kind: random_walk, rate: {rate // 2}, start: 1500, step: 40, unit: W}}
      - {{name: temperature, kind: sine, rate: {rate - rate // 2}, noise: 0.1, unit: C}}
""",
        )
        db = work / "data" / "outbox.db"
        gw = GatewayProcess(config, work / "gw.log").start()
        try:
            assert gw.process is not None
            pid = gw.process.pid
            wait_until(lambda: _committed(db) > rate // 2, 30, "a running gateway")
            io0, n0, t0 = io_write_bytes(pid), _committed(db), time.monotonic()
            time.sleep(seconds)  # the measuring window
            io1, n1, t1 = io_write_bytes(pid), _committed(db), time.monotonic()
        finally:
            gw.stop()
    return LiveMeasurement(durability, interval, n1 - n0, t1 - t0, io1 - io0)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench outbox_durability")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the event counts")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where the file lives")
    parser.add_argument("--rate", type=int, default=1000, help="live: simulated events/s")
    parser.add_argument("--seconds", type=float, default=8.0, help="live: measuring window")
    args = parser.parse_args(argv)
    rows = [
        measure(args.dir, durability, per_commit, max(per_commit, int(n * args.scale)))
        for durability in ("batch", "fsync")
        for per_commit, n in BATCHES.items()
    ]
    print(f"outbox durability: real Outbox, file in {args.dir}; write_bytes per event")
    header = (
        "mode",
        "ev/commit",
        "events",
        "payload B",
        "accept ev/s",
        "accept B/ev",
        "life B/ev",
        "life/payload",
    )
    print("{:>6} {:>9} {:>8} {:>9} {:>12} {:>11} {:>9} {:>12}".format(*header))
    for m in rows:
        print(
            f"{m.durability:>6} {m.per_commit:>9} {m.events:>8} {m.payload:>9.0f} "
            f"{m.accept_rate:>12,.0f} {m.accept_bytes:>11,.0f} {m.life_bytes:>9,.0f} "
            f"{m.life_bytes / m.payload:>11.1f}x"
        )
    payload = sum(m.payload for m in rows) / len(rows)
    with tempfile.TemporaryDirectory() as broker_dir, LocalBroker(Path(broker_dir)) as broker:
        live = [
            measure_live(
                args.dir, broker.port, durability, interval, rate=args.rate, seconds=args.seconds
            )
            for durability in ("batch", "fsync")
            for interval in ("20ms", "50ms", "250ms")
        ]
    print()
    print(
        f"live gateway process: sim {args.rate} events/s -> outbox -> local Mosquitto (QoS 1), "
        f"{args.seconds:.0f} s; /proc/<pid>/io write_bytes per committed event"
    )
    live_header = ("mode", "commit", "events", "written", "B/ev", "B/ev/payload")
    print("{:>6} {:>7} {:>8} {:>11} {:>8} {:>13}".format(*live_header))
    for x in live:
        per_event = x.written / max(1, x.events)
        print(
            f"{x.durability:>6} {x.commit_interval:>7} {x.events:>8} {x.written:>11,} "
            f"{per_event:>8,.0f} {per_event / payload:>12.1f}x"
        )
