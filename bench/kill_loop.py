"""kill -9 under load, over and over: is every committed event delivered?

The gateway runs as a real process (``tidegate run``) with simulated sensors
at ~1,000 events/s, committing every 20 ms and publishing to a real broker.
Each cycle starts it, waits until it is connected and publishing, lets it run
for a random moment (0.2 to 1.0 s, from a seeded RNG, so a failing sequence can
be rerun), and kills it with SIGKILL. After each kill:

- ``PRAGMA integrity_check`` on the outbox must say ``ok``;
- ``sources.last_seq`` (what was committed, per source) must not go back;
- the ledger's reserved marks cover every committed seq (so no seq can ever be used
  twice, whatever happens to the file), and no start counted a loss;
- nothing was delivered that was not committed (delivered seq <= last_seq).

After the last cycle the gateway starts once more and runs until every
committed seq (1..last committed, per source) has reached the subscriber.
Lost = committed seqs never received; duplicates are extra copies (each must
carry the same event id).

Run: ``./dev bench kill_loop --cycles 200 [--seed N]``. The CI test
(tests/test_crash_loop.py) runs the same loop for 20 cycles.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import GatewayProcess, Subscriber, wait_until, write_config
from tidegate.demo.local_broker import LocalBroker
from tidegate.outbox.ledger.file import ledger_path, read_ledger

GATEWAY = "crash"
KILL_AFTER = (0.2, 1.0)
"""Seconds after the gateway reported it is connected: the window the kill lands in."""


@dataclass
class KillLoopResult:
    seed: int
    cycles: int = 0
    kill_delays: list[float] = field(default_factory=list)
    committed: dict[str, int] = field(default_factory=dict)
    """Per source, the last seq committed at the last kill."""
    received: int = 0
    """Event copies the subscriber received (duplicates included)."""
    delivered: int = 0
    """Distinct committed events received."""
    lost: list[tuple[str, int]] = field(default_factory=list)
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)
    """Integrity failures, committed seqs that went back, deliveries of uncommitted events,
    duplicates with another id, a final run that did not exit cleanly."""
    seconds: float = 0.0

    @property
    def committed_total(self) -> int:
        return sum(self.committed.values())

    def describe(self) -> str:
        delays = ", ".join(f"{d:.2f}" for d in self.kill_delays)
        return (
            f"seed {self.seed}, {self.cycles} cycles, kills at [{delays}] s after connect; "
            f"committed {self.committed}, delivered {self.delivered}, lost {len(self.lost)} "
            f"(first {self.lost[:5]}), duplicates {self.duplicates}; problems: {self.problems}"
        )


def _config(workdir: Path, host: str, port: int, rate: int) -> Path:
    return write_config(
        workdir / "crash.yaml",
        f"""
gateway: {{id: {GATEWAY}, data_dir: {workdir / "data"}}}
mqtt: {{host: {host}, port: {port}, reconnect: {{initial_delay: 100ms, max_delay: 1s}}}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: {rate * 6 // 10}}}]
  - name: beta
    type: sim
    signals: [{{name: t, kind: sine, rate: {rate - rate * 6 // 10}}}]
""",
    )


def _read_outbox(db: Path) -> tuple[str, dict[str, int]]:
    """(integrity_check's verdict, last committed seq per source), read-only."""
    conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        verdict = "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
        committed = dict(conn.execute("SELECT source, last_seq FROM sources").fetchall())
        lost = conn.execute("SELECT value FROM counters WHERE name = 'lost_in_recovery'")
        if lost.fetchone() is not None:
            verdict += "; a start counted events lost in recovery"
        return verdict, committed
    finally:
        conn.close()


def _uncovered(db: Path, committed: dict[str, int]) -> list[str]:
    """Sources whose committed seq is above the ledger's reserved mark."""
    status, state = read_ledger(ledger_path(db))
    if state is None:
        return [f"ledger {status}"]
    return [
        f"{source}: committed {seq} > reserved {state.reserved.get(source, 0)}"
        for source, seq in committed.items()
        if seq > state.reserved.get(source, 0)
    ]


class Tally:
    """The ids received per (source, seq), updated from the subscriber's new messages only."""

    def __init__(self, sub: Subscriber) -> None:
        self.sub = sub
        self.seen = 0
        self.copies = 0
        self.ids: dict[tuple[str, int], set[str]] = {}

    def update(self) -> Tally:
        fresh = self.sub.snapshot()[self.seen :]
        self.seen += len(fresh)
        for msg in fresh:
            if msg.topic.endswith("/status"):
                continue
            doc = json.loads(msg.payload)
            for event in doc if isinstance(doc, list) else [doc]:
                self.copies += 1
                self.ids.setdefault((event["source"], event["seq"]), set()).add(event["id"])
        return self

    def missing(self, committed: dict[str, int]) -> list[tuple[str, int]]:
        return [
            (source, seq)
            for source, top in sorted(committed.items())
            for seq in range(1, top + 1)
            if (source, seq) not in self.ids
        ]


def _connected(gw: GatewayProcess) -> Callable[[], bool]:
    return lambda: "connected to broker" in gw.output()


def _check_after_kill(result: KillLoopResult, cycle: int, db: Path, tally: Tally) -> None:
    verdict, committed = _read_outbox(db)
    if verdict != "ok":
        result.problems.append(f"cycle {cycle}: integrity_check: {verdict}")
    for problem in _uncovered(db, committed):
        result.problems.append(f"cycle {cycle}: seq not reserved: {problem}")
    for source, before in result.committed.items():
        if committed.get(source, 0) < before:
            result.problems.append(
                f"cycle {cycle}: {source} committed seq went back {before} -> "
                f"{committed.get(source)}"
            )
    for source, seq in tally.update().ids:
        if seq > committed.get(source, 0):
            result.problems.append(f"cycle {cycle}: {source} seq {seq} delivered, not committed")
            break
    result.committed = committed


def run_kill_loop(
    workdir: Path,
    host: str,
    port: int,
    *,
    cycles: int,
    seed: int,
    rate: int = 1000,
    progress: Callable[[str], None] | None = None,
) -> KillLoopResult:
    """Kill the gateway ``cycles`` times under load, then check what arrived."""
    rng = random.Random(seed)
    result = KillLoopResult(seed)
    config = _config(workdir, host, port, rate)
    db = workdir / "data" / "outbox.db"
    sub = Subscriber(host, port, f"tidegate/{GATEWAY}/#").start()
    tally = Tally(sub)
    started = time.monotonic()
    try:
        for cycle in range(1, cycles + 1):
            gw = GatewayProcess(config, workdir / f"gw-{cycle}.log").start()
            try:
                wait_until(_connected(gw), 30, f"cycle {cycle}: the gateway to connect")
            except AssertionError as exc:
                gw.kill()
                result.problems.append(f"{exc}; its log ends: {gw.output()[-2000:]}")
                break
            delay = rng.uniform(*KILL_AFTER)
            result.kill_delays.append(delay)
            time.sleep(delay)  # the kill moment itself (random, seeded): not a wait for state
            gw.kill()
            result.cycles = cycle
            _check_after_kill(result, cycle, db, tally)
            if progress is not None and cycle % 10 == 0:
                progress(f"{cycle} cycles, committed {sum(result.committed.values())}")
        final = GatewayProcess(config, workdir / "gw-final.log").start()
        try:
            committed = dict(result.committed)
            wait_until(_connected(final), 30, "the final run to connect")
            with contextlib.suppress(AssertionError):  # what never arrived is reported as lost
                wait_until(
                    lambda: not tally.update().missing(committed),
                    60,
                    "every committed event at the subscriber",
                    poll=0.1,
                )
        finally:
            code = final.stop()
        if code != 0:
            result.problems.append(f"final run exited with {code}")
        verdict, _ = _read_outbox(db)
        if verdict != "ok":
            result.problems.append(f"after the final run: integrity_check: {verdict}")
    finally:
        sub.stop()
    result.seconds = time.monotonic() - started
    tally.update()
    result.received = tally.copies
    result.lost = tally.missing(result.committed)
    result.delivered = sum(
        1 for (source, seq) in tally.ids if seq <= result.committed.get(source, 0)
    )
    result.duplicates = tally.copies - len(tally.ids)
    for key, ids in tally.ids.items():
        if len(ids) > 1:
            result.problems.append(f"{key} received with {len(ids)} different ids")
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench kill_loop")
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--rate", type=int, default=1000, help="simulated events/s")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    with tempfile.TemporaryDirectory(prefix="tidegate-kill-") as tmp:
        workdir = Path(tmp)
        with LocalBroker(workdir / "broker") as broker:
            r = run_kill_loop(
                workdir,
                broker.host,
                broker.port,
                cycles=args.cycles,
                seed=seed,
                rate=args.rate,
                progress=lambda line: print(f"  … {line}", flush=True),
            )
    print(
        f"kill -9 loop: {args.rate} events/s, commit_interval 20ms, QoS 1, seed {seed}, "
        f"{r.seconds:.0f} s"
    )
    header = ("cycles", "committed", "delivered", "lost", "duplicates", "problems")
    print("{:>7} {:>10} {:>10} {:>6} {:>11} {:>9}".format(*header))
    print(
        f"{r.cycles:>7} {r.committed_total:>10} {r.delivered:>10} {len(r.lost):>6} "
        f"{r.duplicates:>11} {len(r.problems):>9}"
    )
    for problem in r.problems[:20]:
        print(f"  problem: {problem}")
    if r.lost:
        print(f"  lost (first 10): {r.lost[:10]}")
