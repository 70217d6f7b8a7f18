"""An MQTT bridge, tidegate next to Node-RED: the same broker, input and counting.

Issue 12's "bridge" goal. On one private Mosquitto (127.0.0.1, a free port), N Tasmota-
style JSON lines (~92 B, one message each) are published with ``mosquitto_pub -l -q 1``
to ``tele/bench/SENSOR``; a bridge turns each into one event on ``bench/out/bench/
temperature`` on the same broker, QoS 1; a ``mosquitto_sub -C N -q 1`` on a persistent
session made before the input starts counts them and exits after N. Rows:

- ``feeder alone``: mosquitto_pub straight to mosquitto_sub, nothing between: the
  ceiling of this input and counting;
- ``tidegate``: ``tidegate run`` in a child process: the ``mqtt`` driver (subscription
  QoS 1) → one rule (``set``: °C to °F, ``publish`` to the output topic, QoS 1) → the
  outbox (every event committed to disk: default ``batch`` durability, 50 ms commits) →
  one event per message;
- ``Node-RED``: mqtt in (QoS 1, JSON) → a function doing the rule's work (take the field,
  convert, build an event with id/time/seq, route by source) → mqtt out (QoS 1); nothing
  on disk. Installed with npm into a temporary folder and cached (see ``bench._nodered``);
  skipped, with one line saying why, where node or npm is missing or the install fails.

Wall time: from starting the feeder to mosquitto_sub's exit. CPU: the bridge process
(all threads, and any children) from ``/proc/PID/stat``, from the start of the input
until it went quiet after the last message, per event. Peak RSS: ``VmHWM``. Broker CPU
per message is shown too: it shares the 2 cores. Each bridge is started and proven to
pass a probe message (on another source, not counted) before the timed input, and the
values the counter received are checked against the input (converted to °F).
mosquitto_pub 2.0.11 stops a ``-l`` input after 65,535 QoS 1 messages (its message id
wraps), so the input goes through consecutive mosquitto_pub processes of at most 50,000
lines each. With ``--rounds R`` every row runs R times, the two bridges in alternating
order (load on the machine drifts), and the goal row compares their median runs.
Figures only: nothing is asserted.

Run: ``./dev bench bridge_vs_nodered [--messages N] [--rounds R] [--skip-node-red]
[--pub-inflight M]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench import _nodered as nr
from tidegate.demo.local_broker import LocalBroker

IN_TOPIC = "tele/bench/SENSOR"
IN_FILTER = "tele/+/SENSOR"
OUT_PREFIX = "bench/out"
COUNTED = f"{OUT_PREFIX}/bench/#"
"""The probe's events go to bench/out/probe/..., outside what is counted."""
FEED_CHUNK = 50_000
"""Lines per mosquitto_pub (its ``-l`` mode breaks past 65,535 QoS 1 messages)."""


@dataclass
class Row:
    label: str
    messages: int
    seconds: float
    cpu: float | None
    rss_kib: int | None
    broker_cpu: float
    check: str


def write_input(path: Path, n: int) -> Counter[float]:
    """N lines of Tasmota telemetry; returns the °F values a bridge must deliver."""
    expected: Counter[float] = Counter()
    with path.open("w") as out:
        for i in range(n):
            celsius = round(15 + (i % 200) / 10, 1)
            out.write(f'{{"Time":"2026-03-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:'
                      f'{i % 60:02d}","AM2301":{{"Temperature":{celsius},"Humidity":40.2}},'
                      f'"TempUnit":"C"}}\n')
            expected[round(celsius * 1.8 + 32, 6)] += 1
    return expected


def split_input(path: Path) -> list[Path]:
    lines = path.read_text().splitlines(keepends=True)
    chunks = []
    for k, start in enumerate(range(0, len(lines), FEED_CHUNK)):
        chunk = path.with_name(f"{path.name}.{k:03d}")
        chunk.write_text("".join(lines[start:start + FEED_CHUNK]))
        chunks.append(chunk)
    return chunks


DRIVER_ID = "tidegate-bench-in"


def gateway_yaml(port: int, data_dir: Path) -> str:
    return f"""
gateway: {{id: bench, data_dir: "{data_dir}"}}
mqtt: {{host: 127.0.0.1, port: {port}}}
drivers:
  - name: site
    type: mqtt
    host: 127.0.0.1
    port: {port}
    client_id: {DRIVER_ID}
    subscriptions:
      - topic: "{IN_FILTER}"
        qos: 1
        source: "{{topic[1]}}"
        parse:
          format: json
          fields: {{AM2301.Temperature: {{name: temperature, unit: "°C"}}}}
rules:
  - name: fahrenheit
    match: {{name: temperature}}
    set: {{value: "value * 1.8 + 32", unit: "'°F'"}}
    publish: {{topic: "{OUT_PREFIX}/{{source}}/{{name}}", qos: 1}}
"""


def _check(output: Path, expected: Counter[float], *, bridged: bool) -> str:
    """'ok' when the counter got exactly the expected values, else what differs."""
    got: Counter[float] = Counter()
    wrong = 0
    for line in output.read_text().splitlines():
        value: object = None
        with contextlib.suppress(ValueError, KeyError, TypeError):
            doc = json.loads(line)
            if not bridged:  # the input itself: convert it here
                value = doc["AM2301"]["Temperature"] * 1.8 + 32
            elif doc["unit"] == "°F" and doc["name"] == "temperature":
                value = doc["value"]
        if isinstance(value, (int, float)):
            got[round(value, 6)] += 1
        else:
            wrong += 1
    missing = sum((expected - got).values())
    if not wrong and not missing:
        return "ok"
    return f"{missing} missing, {wrong} unreadable"


class Bench:
    def __init__(self, work: Path, broker: LocalBroker, stack: contextlib.ExitStack,
                 n: int, pub_inflight: int | None) -> None:
        self.work, self.broker, self.stack, self.n = work, broker, stack, n
        self.pub_inflight = pub_inflight
        self.expected = write_input(work / "input.jsonl", n)
        self.chunks = split_input(work / "input.jsonl")
        self.timeout = max(120.0, n / 300)
        self.round = 0

    def popen(self, args: list[str], stdout: IO[bytes] | int = subprocess.DEVNULL,
              stderr: IO[bytes] | int | None = None) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout,
                                   stderr=stderr, start_new_session=True)
        self.stack.callback(nr.stop_process, process)
        return process

    def end_session(self, client_id: str) -> None:
        """Drop a persistent session: left behind, the broker would queue the next rows'
        messages for it (a clean connect with the same client id discards it)."""
        subprocess.run(["mosquitto_sub", *self._mqtt_args(), "-i", client_id,
                        "-t", "bench/nothing", "-E"], check=True, timeout=30,
                       stdin=subprocess.DEVNULL)

    def _mqtt_args(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1"]

    def measure(self, label: str, out_filter: str, bridge: int | None) -> Row:
        try:
            return self._measure(label, out_filter, bridge)
        finally:
            # Best effort: an error here must not hide the measurement's own.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.end_session(self._counter_id(label))

    def _counter_id(self, label: str) -> str:
        return f"bench-count-{self.round}-{label.replace(' ', '-')}"

    def _measure(self, label: str, out_filter: str, bridge: int | None) -> Row:
        client_id = self._counter_id(label)
        # The session exists before any input: nothing is lost while the counter connects.
        subprocess.run(["mosquitto_sub", *self._mqtt_args(), "-c", "-i", client_id,
                        "-t", out_filter, "-E"], check=True, timeout=30,
                       stdin=subprocess.DEVNULL)
        output = self.work / f"counted-{client_id}.txt"
        with output.open("wb") as out:
            counter = self.popen(["mosquitto_sub", *self._mqtt_args(), "-c", "-i", client_id,
                                  "-t", out_filter, "-C", str(self.n)], stdout=out)
        assert self.broker.process is not None
        broker_pid = self.broker.process.pid
        cpu0 = nr.cpu_seconds(bridge) if bridge else None
        broker0 = nr.cpu_seconds(broker_pid)
        inflight = ["-M", str(self.pub_inflight)] if self.pub_inflight else []
        script = 'for f in "$@"; do mosquitto_pub -l -t ' + IN_TOPIC + " " + " ".join(
            [*self._mqtt_args(), *inflight]) + ' < "$f" || exit 1; done'
        t0 = time.perf_counter()
        feeder = self.popen(["sh", "-c", script, "feed", *map(str, self.chunks)])
        try:
            counter.wait(self.timeout)
        except subprocess.TimeoutExpired:
            nr.stop_process(counter)
            got = len(output.read_bytes().splitlines())
            raise RuntimeError(f"{label}: {got} of {self.n} messages in {self.timeout:.0f} s; "
                               f"feeder exit {feeder.poll()}") from None
        seconds = time.perf_counter() - t0
        if feeder.wait(60) != 0:
            raise RuntimeError(f"{label}: the feeder failed (exit {feeder.returncode})")
        cpu = nr.settled_cpu_seconds(bridge) - cpu0 if bridge and cpu0 is not None else None
        broker_cpu = nr.cpu_seconds(broker_pid) - broker0
        return Row(label, self.n, seconds, cpu, nr.peak_rss_kib(bridge) if bridge else None,
                   broker_cpu, _check(output, self.expected, bridged=bridge is not None))

    def ready(self, label: str, process: subprocess.Popen[bytes], log: Path) -> None:
        def alive() -> None:
            if process.poll() is not None:
                raise RuntimeError(f"{label} exited ({process.returncode}): "
                                   + log.read_text(errors="replace")[-1500:])
        nr.wait_until_bridging(self.broker.port, f"{OUT_PREFIX}/probe/#", "tele/probe/SENSOR",
                            alive, deadline=120.0)
        assert self.broker.process is not None
        beyond = nr.listening_beyond_loopback([process.pid, self.broker.process.pid])
        if beyond:
            raise RuntimeError(f"{label} listens beyond 127.0.0.1: {beyond}")

    def tidegate(self) -> Row:
        config = self.work / "tidegate.yaml"
        config.write_text(gateway_yaml(self.broker.port, self.work / f"data-{self.round}"))
        log = self.work / "tidegate.log"
        with log.open("ab") as out:
            gateway = self.popen([sys.executable, "-m", "tidegate", "run", "-c", str(config)],
                                 stdout=out, stderr=subprocess.STDOUT)
        self.ready("tidegate", gateway, log)
        try:
            return self.measure("tidegate", COUNTED, gateway.pid)
        finally:
            nr.stop_process(gateway)
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.end_session(DRIVER_ID)

    def node_red(self, red: nr.NodeRed) -> Row:
        settings = nr.write_node_red_files(self.work, broker_port=self.broker.port,
                                           in_filter=IN_FILTER, out_prefix=OUT_PREFIX,
                                           client_id="node-red-bench")
        log = self.work / "node-red.log"
        process = nr.start_node_red(red, settings, log)
        self.stack.callback(nr.stop_process, process)
        self.ready("Node-RED", process, log)
        try:
            return self.measure(f"Node-RED {red.version}", COUNTED, process.pid)
        finally:
            nr.stop_process(process)


def _rate(row: Row) -> float:
    return row.messages / row.seconds


def median_row(rows: list[Row]) -> Row:
    """The run with the median events/s (the upper one of an even count)."""
    return sorted(rows, key=_rate)[len(rows) // 2]


def print_table(rows: list[tuple[int, Row]], n: int, notes: list[str]) -> None:
    print(f"MQTT bridge on one local Mosquitto: {n} messages (~92 B Tasmota JSON, one line "
          "each) by mosquitto_pub -l -q 1 → bridge → QoS 1, one event per message → "
          "counted by mosquitto_sub -C N -q 1")
    for note in notes:
        print(note)
    print("{:<20} {:>5} {:>8} {:>9} {:>12} {:>9} {:>13} {:>6}".format(
        "path", "round", "seconds", "events/s", "CPU µs/event", "peak RSS", "broker µs/msg",
        "check"))
    for k, r in rows:
        cpu = f"{r.cpu / r.messages * 1e6:.1f}" if r.cpu is not None else "-"
        rss = f"{r.rss_kib / 1024:.0f} MB" if r.rss_kib is not None else "-"
        print(f"{r.label:<20} {k:>5} {r.seconds:>8.2f} {_rate(r):>9,.0f} {cpu:>12} "
              f"{rss:>9} {r.broker_cpu / r.messages * 1e6:>13.1f} {r.check:>6}")


def print_goal(tidegate: Row | None, node_red: Row | None, why_not: str, rounds: int) -> None:
    def rate(row: Row | None) -> str:
        return f"{_rate(row):,.0f}" if row else "n/a"
    verdict = f"; median of {rounds} rounds" if rounds > 1 else ""
    if tidegate and node_red:
        ratio = _rate(tidegate) / _rate(node_red)
        verdict = f" ({ratio:.2f}x, {'met' if ratio >= 1 else 'not met'}{verdict})"
    elif verdict:
        verdict = f" ({verdict[2:]})"
    print(f"goal: tidegate >= Node-RED at QoS 1, one event per message, committing every "
          f"event: now {rate(tidegate)} vs {rate(node_red)} events/s{verdict}"
          + (f" (Node-RED skipped: {why_not})" if node_red is None and why_not else ""))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench bridge_vs_nodered")
    parser.add_argument("--messages", type=int, default=100_000, help="input messages per row")
    parser.add_argument("--skip-node-red", action="store_true", help="only the other rows")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every row this often, the bridges in alternating order; "
                        "the goal row compares the medians")
    parser.add_argument("--pub-inflight", type=int, default=None,
                        help="mosquitto_pub -M (default: mosquitto_pub's own, 20)")
    args = parser.parse_args(argv)
    # A plain SIGTERM would skip the clean-up below and leave Node-RED and the gateway
    # running in their own sessions: make it unwind like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    missing = [tool for tool in ("mosquitto_pub", "mosquitto_sub") if not shutil.which(tool)]
    if missing:
        print(f"bridge_vs_nodered needs {' and '.join(missing)} "
              "(Debian: sudo apt install mosquitto-clients); nothing measured")
        return
    red: nr.NodeRed | str = "--skip-node-red"
    if not args.skip_node_red:
        red = nr.ensure_node_red()
    notes = []
    if isinstance(red, str):
        print(f"Node-RED skipped: {red}")
    else:
        notes.append(f"Node-RED {red.version}: {red.how}")
    if args.pub_inflight:
        notes.append(f"mosquitto_pub -M {args.pub_inflight}")
    load = os.getloadavg()[0]
    rows: list[tuple[int, Row]] = []
    by_path: dict[str, list[Row]] = {"tidegate": [], "Node-RED": []}
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as workdir, \
            contextlib.ExitStack() as stack:
        work = Path(workdir)
        broker = stack.enter_context(LocalBroker(work / "broker"))
        bench = Bench(work, broker, stack, args.messages, args.pub_inflight)
        for k in range(1, args.rounds + 1):
            bench.round = k
            rows.append((k, bench.measure("feeder alone", IN_TOPIC, None)))
            order = ["tidegate", "Node-RED"] if k % 2 else ["Node-RED", "tidegate"]
            for path in order:
                if path == "tidegate":
                    row = bench.tidegate()
                elif not isinstance(red, str):
                    row = bench.node_red(red)
                else:
                    continue
                by_path[path].append(row)
                rows.append((k, row))
    notes.append(f"2-core machine shared with whatever else runs: load average {load:.1f} "
                 f"at the start, {os.getloadavg()[0]:.1f} at the end (compare within a run)")
    print_table(rows, args.messages, notes)
    tidegate = median_row(by_path["tidegate"])
    node_red = median_row(by_path["Node-RED"]) if by_path["Node-RED"] else None
    print_goal(tidegate, node_red, red if isinstance(red, str) else "", args.rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
