"""How fast the CLI starts and how small an idle gateway stays.

Run: ``./dev bench startup [--runs N]``. Every command runs N times in a fresh
process, as a user runs it (the installed ``tidegate`` script); the table
shows the median and the slowest wall time and the highest peak RSS. The
targets (issue 10): each command ≤ 150 ms, an idle gateway with a small sim
config ≤ 40 MB. ``status`` talks to a real gateway started for the run; ``check``
runs on the bench's small sim file and on the laptop demo (config/simulate.yaml,
which has rules and three driver kinds).
Then: the import tree's top ten for ``check`` (``python -X importtime``) and
the installed size of tidegate and its dependencies.

Commands run with their bytecode cached, as an installed tidegate runs:
``PYTHONDONTWRITEBYTECODE`` is removed from their environment (set, it makes
every run compile each of tidegate's modules again). CPU time (user + system)
is shown beside wall time: on a busy machine it is the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

COMMAND_TARGET_MS = 150.0
IDLE_TARGET_MB = 40.0
IDLE_SECONDS = 3.0
"""How long the gateway runs idle before its RSS is read."""

DEMO = Path(__file__).resolve().parents[1] / "config" / "simulate.yaml"
"""The laptop demo: sim, serial and gpio drivers and rules (``check`` of a real file)."""

SMALL_SIM = """\
gateway: {{id: bench, data_dir: {data}}}
drivers:
  - name: room
    type: sim
    signals: [{{name: temperature, kind: sine, rate: 1}}]
"""


def tidegate_command() -> list[str]:
    script = Path(sys.executable).parent / "tidegate"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tidegate"]


CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

LAUNCHER = """
import os, sys, time
devnull = os.open(os.devnull, os.O_WRONLY)
start = time.perf_counter()
quiet = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=quiet)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - start
cpu = usage.ru_utime + usage.ru_stime
print(elapsed, cpu, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""
"""Starts the command and reports its rusage. A child's peak RSS counts the memory of
the process it was forked from, so the command is started by this small interpreter
(``python -S``), not by the benchmark, whose own RSS would hide a small command's."""


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_kb: int
    exit_code: int


def run_once(argv: list[str]) -> Run:
    """One fresh process: its wall and CPU time and its peak RSS (``wait4``'s rusage)."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, *argv],
        capture_output=True,
        text=True,
        env=CHILD_ENV,
        check=True,
    )
    seconds, cpu, rss, code = done.stdout.split()
    return Run(float(seconds), float(cpu), int(rss), int(code))


def vm_kb(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process, in kB."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {field} in /proc/{pid}/status")
    return int(match.group(1))


def wait_for(path: Path, process: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited ({process.returncode}) before serving")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway did not serve {path} within {within:.0f} s")
        time.sleep(0.05)


def measure_commands(config: Path, runs: int) -> list[tuple[str, list[Run]]]:
    command = tidegate_command()
    cases = [
        ("--version", ["--version"]),
        ("--help", ["--help"]),
        ("status", ["status", "-c", str(config)]),
        ("check -c FILE", ["check", "-c", str(config)]),
        ("check the demo", ["check", "-c", str(DEMO)]),
    ]
    results = []
    for label, args in cases:
        run_once([*command, *args])  # warm the page cache; not counted
        measured = [run_once([*command, *args]) for _ in range(runs)]
        failed = [r.exit_code for r in measured if r.exit_code != 0]
        if failed:
            raise RuntimeError(f"`tidegate {' '.join(args)}` failed with exit codes {failed}")
        results.append((label, measured))
    return results


def print_table(results: list[tuple[str, list[Run]]], idle: tuple[int, int]) -> None:
    heads = f"{'median ms':>10} {'max ms':>7} {'CPU ms':>7} {'peak RSS MB':>12}"
    print(f"{'command':<14} {heads}  target")
    for label, runs in results:
        times = [r.seconds * 1000 for r in runs]
        median, slowest = statistics.median(times), max(times)
        cpu = statistics.median(r.cpu_seconds * 1000 for r in runs)
        rss = max(r.max_rss_kb for r in runs) / 1024
        verdict = "ok" if median <= COMMAND_TARGET_MS else "OVER"
        print(
            f"{label:<14} {median:>10.0f} {slowest:>7.0f} {cpu:>7.0f} {rss:>12.1f}  "
            f"≤ {COMMAND_TARGET_MS:.0f} ms: {verdict}"
        )
    now, peak = idle[0] / 1024, idle[1] / 1024
    verdict = "ok" if now <= IDLE_TARGET_MB else "OVER"
    blank = f"{'':>10} {'':>7} {'':>7}"
    print(
        f"{'idle gateway':<14} {blank} {now:>12.1f}  ≤ {IDLE_TARGET_MB:.0f} MB: {verdict} "
        f"(RSS after {IDLE_SECONDS:.0f} s idle; peak {peak:.1f} MB)"
    )


def import_top_ten(config: Path) -> list[str]:
    """The ten imports with the largest cumulative time in a `check`."""
    code = (
        "import sys; from tidegate.cli.main import main; "
        f"sys.argv = ['tidegate', 'check', '-c', {str(config)!r}]; main()"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=CHILD_ENV,
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
    rows.sort(reverse=True)
    lines = [f"{'cumulative ms':>13} {'self ms':>8}  module"]
    lines += [f"{cum / 1000:>13.1f} {own / 1000:>8.1f} {name}" for cum, own, name in rows[:10]]
    return lines


def _requirement_name(requirement: str) -> str | None:
    if "extra ==" in requirement:
        return None
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    return match.group(0) if match else None


def installed_size() -> list[str]:
    """tidegate and the distributions it needs (not its extras), by size on disk."""
    seen: dict[str, int] = {}
    todo = ["tidegate"]
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        size = 0
        for file in dist.files or ():
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                size += path.stat().st_size
        seen[key] = size
        todo += [n for r in dist.requires or () if (n := _requirement_name(r))]
    by_size = sorted(seen.items(), key=lambda item: -item[1])
    lines = [f"{name:<24} {size / 1e6:>7.1f} MB" for name, size in by_size]
    lines.append(f"{'total':<24} {sum(seen.values()) / 1e6:>7.1f} MB")
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="./dev bench startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="fresh processes per command")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tidegate-startup-") as tmp:
        config = Path(tmp) / "small-sim.yaml"
        config.write_text(SMALL_SIM.format(data=Path(tmp) / "data"))
        gateway = subprocess.Popen(
            [*tidegate_command(), "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=CHILD_ENV,
        )
        try:
            wait_for(Path(tmp) / "data" / "control.sock", gateway)
            time.sleep(IDLE_SECONDS)  # idle: the figure to report, not a synchronisation
            idle = (vm_kb(gateway.pid, "VmRSS"), vm_kb(gateway.pid, "VmHWM"))
            results = measure_commands(config, options.runs)
        finally:
            gateway.terminate()
            gateway.wait(30)
        print(f"{options.runs} runs each, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        print_table(results, idle)
        print("\nimport tree of `check`, top ten by cumulative time (python -X importtime):")
        print("\n".join(import_top_ten(config)))
    print("\ninstalled size (tidegate and what it requires):")
    print("\n".join(installed_size()))


if __name__ == "__main__":
    main(sys.argv[1:])
