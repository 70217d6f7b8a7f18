"""On a quarter of one core: the highest event rate the full path sustains.

Issue 12's last goal (a Pi Zero 2-class budget). The gateway — a ``sim`` driver
at a fixed rate → one publish rule → outbox → a private Mosquitto on loopback,
QoS 1, the default commit settings (50 ms, 1,000 events) and ``max_inflight``
200 — runs in a child process placed in a cgroup with a CPU quota of 25 % of
one core (``bench._cgroup``; the child joins the group before it execs Python,
so all its threads are inside the quota). The broker and this process run
outside it. Each trial is a fresh child with a fresh ``data_dir``.

A trial at rate R: after a warm-up (5 s from the sim driver's start), the child
samples the gateway every 100 ms for ``--seconds``. R is **sustained** when all
of these hold over that window W:

- accepted (committed to the outbox) ≥ 98 % of R x W, and delivered (PUBACKed)
  ≥ 98 % of R x W. The sim driver does not drop what it cannot hand over: its
  ``emit`` blocks on the gateway's bounded queue and it catches up later, so a
  starved gateway shows as a shortfall here, not as a slower schedule;
- the outbox did not grow: its depth (events accepted, not yet acknowledged)
  at the end exceeds the depth at the start by at most the *allowance*,
  ``R x 2 x commit_interval + max_inflight x events_per_message``: one commit
  interval of events committed but not yet taken by the publisher, one of
  events PUBACKed but not yet acknowledged to the outbox (the publisher does
  that every commit interval), and a full send window. Start and end depths are
  the medians of the samples of the window's first and last second (a single
  sample lands on a random phase of the commits and of the quota's 100 ms
  periods);
- the child really was in the group (read from ``/proc/<pid>/cgroup``).

A trial that falls behind by 3x the tolerated shortfall is stopped early (shown
as ``no*``). The search per mode: start at ``--start-rate``, double while
sustained (halve while not), then bisect ``--refine`` times between the highest
sustained and lowest failed rates. The answer is the highest sustained rate.
CPU is the child's (all threads) over the window, as % of one core (≈ the quota
when saturated); "throttled" is the share of 100 ms periods in which the quota
ran out (``cpu.stat``).

Run: ``./dev bench quarter_core [--seconds 60] [--modes 1,100] [--start-rate 500]
[--quota-percent 25] [--refine 4]``. Needs a writable cgroup (root); without one
it says why and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._cgroup import CgroupUnavailable, CpuGroup, cpu_group

WARMUP = 5.0
TICK = 0.1
"""Sampling period of the child: the only sleep, and not a synchronisation."""
EDGE = 1.0
"""Seconds at each end of the window whose depth samples give the start/end depth."""
SHORTFALL = 0.02
EARLY_STOP = 3 * SHORTFALL
COMMIT_INTERVAL = 0.05
MAX_INFLIGHT = 200
MIN_RATE = 10
MAX_RATE = 2_000_000


def _config(port: int, data_dir: str, rate: int, per_message: int) -> str:
    return f"""
gateway: {{id: quarter, data_dir: {data_dir}}}
mqtt: {{host: 127.0.0.1, port: {port}, events_per_message: {per_message},
       max_inflight: {MAX_INFLIGHT}}}
buffer: {{commit_interval: {int(COMMIT_INTERVAL * 1000)}ms}}
drivers:
  - name: meter
    type: sim
    signals:
      - {{name: power, kind: random_walk, rate: {rate}, unit: W}}
rules:
  - name: power
    match: {{source: meter, name: power}}
    publish: {{topic: "site/{{gateway}}/{{source}}/{{name}}"}}
"""


# -- the child, inside the cgroup ------------------------------------------------------


async def _child(args: dict[str, Any]) -> dict[str, Any]:
    # Imported here: the parent (outside the quota) needs none of the gateway.
    from tidegate.config.loader import load_config_text  # noqa: PLC0415 - child only
    from tidegate.driver import DriverState  # noqa: PLC0415 - child only
    from tidegate.pipeline import Gateway  # noqa: PLC0415 - child only

    rate, per_message, seconds = args["rate"], args["per_message"], args["seconds"]
    group = CpuGroup(Path(args["group"]), args["version"], 0, 0)
    cfg = load_config_text(_config(args["port"], args["data_dir"], rate, per_message))
    gateway = Gateway(cfg)
    publisher, driver, outbox = gateway.publisher, gateway.drivers[0], gateway.outbox
    assert publisher is not None
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))

    async def tick() -> None:
        await asyncio.sleep(TICK)
        if task.done():
            task.result()
            raise RuntimeError("the gateway stopped by itself")

    deadline = time.monotonic() + 60
    while not (driver.health.state is DriverState.RUNNING and publisher.status.connected):
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start and connect within 60 s")
        await tick()
    sim_start = driver.health.since_monotonic  # the sim's schedule starts here
    while time.monotonic() < sim_start + WARMUP:
        await tick()

    def sample() -> dict[str, float]:
        return {
            "t": time.monotonic(),
            "accepted": outbox.stats.accepted,
            "delivered": publisher.status.events_delivered,
            "depth": outbox.stats.depth,
            "emitted": driver.health.events,
        }

    first = sample()
    cpu0, stat0 = time.process_time(), group.stat()
    depths: list[tuple[float, int]] = [(first["t"], int(first["depth"]))]
    end_at = first["t"] + seconds
    stopped_early = False
    while True:
        await tick()
        now = sample()
        depths.append((now["t"], int(now["depth"])))
        if now["t"] >= end_at:
            break
        due = rate * (now["t"] - first["t"])
        done = min(now["accepted"] - first["accepted"], now["delivered"] - first["delivered"])
        if due - done > EARLY_STOP * rate * seconds:
            stopped_early = True
            break
    cpu, stat1 = time.process_time() - cpu0, group.stat()
    last = now
    window = last["t"] - first["t"]
    head = [d for t, d in depths if t <= first["t"] + EDGE]
    tail = [d for t, d in depths if t >= last["t"] - EDGE]
    periods = stat1.get("nr_periods", 0) - stat0.get("nr_periods", 0)
    result = {
        "rate": rate,
        "per_message": per_message,
        "window": window,
        "expected": rate * window,
        "accepted": last["accepted"] - first["accepted"],
        "delivered": last["delivered"] - first["delivered"],
        "depth_start": statistics.median(head),
        "depth_end": statistics.median(tail),
        "depth_max": max(d for _, d in depths),
        "behind_end": rate * (last["t"] - sim_start) - last["accepted"],
        "sim_behind_end": rate * (last["t"] - sim_start) - last["emitted"],
        "cpu_share": cpu / window,
        "throttled": (stat1.get("nr_throttled", 0) - stat0.get("nr_throttled", 0))
        / max(1, periods),
        "in_group": group.holds(os.getpid()),
        "stopped_early": stopped_early,
    }
    # Printed before shutting down: an overloaded gateway's shutdown is slow under the quota.
    print(json.dumps(result), flush=True)
    stop.set()
    await task
    return result


# -- the parent: trials, search, table -------------------------------------------------


def allowance(rate: int, per_message: int) -> int:
    return round(rate * 2 * COMMIT_INTERVAL) + MAX_INFLIGHT * per_message


def sustained(r: dict[str, Any]) -> bool:
    floor = (1 - SHORTFALL) * r["expected"]
    return bool(
        r["in_group"]
        and not r["stopped_early"]
        and r["accepted"] >= floor
        and r["delivered"] >= floor
        and r["depth_end"] - r["depth_start"] <= allowance(r["rate"], r["per_message"])
    )


def _trial(
    group: CpuGroup, port: int, rate: int, per_message: int, seconds: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tidegate-quarter-") as data_dir:
        args = {
            "port": port,
            "data_dir": data_dir,
            "rate": rate,
            "per_message": per_message,
            "seconds": seconds,
            "group": str(group.path),
            "version": group.version,
        }
        cmd = group.wrap([sys.executable, "-m", "bench.quarter_core", "--child", json.dumps(args)])
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=WARMUP + seconds + 120, check=False
        )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"trial at {rate}/s failed (exit {out.returncode}):\n{out.stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


HEADER = "{:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}".format(
    "rate/s",
    "sustained",
    "accepted",
    "delivered",
    "depth0",
    "depth1",
    "allowance",
    "behind",
    "CPU",
    "throttled",
)


def _row(r: dict[str, Any]) -> str:
    verdict = "yes" if sustained(r) else ("no*" if r["stopped_early"] else "no")
    if not r["in_group"]:
        verdict = "NOGROUP"
    return (
        f"{r['rate']:>9,} {verdict:>9} {r['accepted'] / r['expected']:>8.1%} "
        f"{r['delivered'] / r['expected']:>8.1%} {r['depth_start']:>9,.0f} "
        f"{r['depth_end']:>9,.0f} {allowance(r['rate'], r['per_message']):>9,} "
        f"{max(0.0, r['behind_end']):>9,.0f} {r['cpu_share']:>6.1%} {r['throttled']:>8.0%}"
    )


def search(trial: Callable[[int], bool], start: int, refine: int) -> int | None:
    """Coarse (doubling or halving from ``start``), then ``refine`` bisections."""
    good: int | None = None
    bad: int | None = None
    rate = start
    if trial(rate):
        good = rate
        while rate * 2 <= MAX_RATE:
            rate *= 2
            if not trial(rate):
                bad = rate
                break
            good = rate
    else:
        bad = rate
        while rate // 2 >= MIN_RATE:
            rate //= 2
            if trial(rate):
                good = rate
                break
            bad = rate
    if good is None or bad is None:
        return good
    step = 10 if bad - good > 100 else 1
    for _ in range(refine):
        mid = (good + bad) // 2 // step * step
        if mid <= good or mid >= bad:
            break
        if trial(mid):
            good = mid
        else:
            bad = mid
    return good


def main(argv: list[str]) -> None:
    # Imported here: only the parent runs the broker.
    from tidegate.demo.local_broker import LocalBroker  # noqa: PLC0415 - parent only

    parser = argparse.ArgumentParser(prog="bench quarter_core")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per trial")
    parser.add_argument(
        "--modes", default="1,100", help="events_per_message values, comma-separated"
    )
    parser.add_argument("--start-rate", type=int, default=500)
    parser.add_argument("--quota-percent", type=float, default=25.0)
    parser.add_argument(
        "--refine", type=int, default=4, help="bisection steps after the coarse search"
    )
    args = parser.parse_args(argv)
    modes = [int(m) for m in args.modes.split(",") if m.strip()]
    answers: dict[int, int | None] = {}
    with contextlib.ExitStack() as stack:
        try:
            group = stack.enter_context(cpu_group(args.quota_percent))
        except CgroupUnavailable as exc:
            print(f"quarter_core skipped: no CPU-quota cgroup here ({exc}); no figure")
            return
        print(
            f"full path (sim → 1 rule → outbox → Mosquitto, QoS 1) in a cgroup v{group.version} "
            f"with {group.quota_us} µs CPU per {group.period_us} µs ({args.quota_percent:g} % of "
            f"one core): {group.path}"
        )
        print(
            f"each trial: {WARMUP:g} s warm-up, then {args.seconds:g} s measured; sustained = "
            f"accepted and delivered ≥ {1 - SHORTFALL:.0%} of rate x seconds, and depth end - "
            f"start ≤ allowance = rate x 2 x {COMMIT_INTERVAL * 1000:g} ms + {MAX_INFLIGHT} "
            "in flight x events/message (depths: medians of the window's first/last second)"
        )
        workdir = stack.enter_context(tempfile.TemporaryDirectory())
        broker = stack.enter_context(LocalBroker(Path(workdir)))
        for per_message in modes:
            print()
            print(f"events per message: {per_message}")
            print(HEADER, flush=True)

            def one(rate: int, per_message: int = per_message) -> bool:
                r = _trial(group, broker.port, rate, per_message, args.seconds)
                print(_row(r), flush=True)
                return sustained(r)

            answers[per_message] = search(one, args.start_rate, args.refine)
    print()
    print(
        f"on {args.quota_percent:g} % of one core, highest rate sustained for {args.seconds:g} s:"
    )
    for per_message, best in answers.items():
        figure = f"{best:,} events/s" if best is not None else f"none ≥ {MIN_RATE}/s"
        print(f"  goal: report it ({per_message}/msg)  now: {figure}")
    print("(* stopped early: behind by more than 3x the tolerated shortfall)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        asyncio.run(_child(json.loads(sys.argv[2])))
    else:
        main(sys.argv[1:])
