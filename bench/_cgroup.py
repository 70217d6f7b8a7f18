"""A CPU-quota cgroup for one benchmark child process (cgroup v2 or v1).

``cpu_group(percent)`` creates a child group of this process's own cgroup with
a CFS quota of ``percent`` % of one core per 100 ms period, yields it, and
removes it at the end (the child must have exited: an empty group is the only
kind ``rmdir`` takes). ``CpuGroup.wrap(argv)`` is the command that joins the
group *before* exec'ing ``argv``, so every thread the child later starts is
inside the quota from its first instruction. Where no group can be made
(no cpu controller, not root, a read-only ``/sys/fs/cgroup``), ``cpu_group``
raises ``CgroupUnavailable`` with the reason.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
"""The CFS period: the quota is refilled every 100 ms (the kernel's default period)."""


class CgroupUnavailable(Exception):
    """No CPU-quota cgroup can be made here; the message says why."""


@dataclass(frozen=True, slots=True)
class CpuGroup:
    path: Path
    version: int
    """1 (the ``cpu`` hierarchy of cgroup v1) or 2 (the unified hierarchy)."""
    quota_us: int
    period_us: int

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` started by a shell that first moves itself into the group."""
        # The shell's own pid is the child's: exec keeps it, so nothing of the child
        # ever runs outside the quota. "$1" is the procs file, the rest is argv.
        script = 'echo $$ > "$1" && shift && exec "$@"'
        return ["sh", "-c", script, "sh", str(self.procs), *argv]

    def stat(self) -> dict[str, int]:
        """``cpu.stat``: nr_periods, nr_throttled and throttled time (v1 ns, v2 µs)."""
        figures: dict[str, int] = {}
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                figures[key] = int(value)
        return figures

    def holds(self, pid: int) -> bool:
        """Whether process ``pid`` is in this group (read from /proc, not assumed)."""
        own = _own_path(self.version, pid)
        return own is not None and (self._mount() / own.lstrip("/")) == self.path

    def _mount(self) -> Path:
        return ROOT if self.version == 2 else ROOT / "cpu"


def _own_path(version: int, pid: int) -> str | None:
    """The process's cgroup path in the hierarchy of ``version`` (v1: the cpu one)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if version == 2 and controllers == "":
            return path
        if version == 1 and "cpu" in controllers.split(","):
            return path
    return None


def _pick_hierarchy() -> tuple[int, Path]:
    """(version, the directory to create the group in), or CgroupUnavailable."""
    controllers = ROOT / "cgroup.controllers"
    if controllers.exists():
        if "cpu" not in controllers.read_text().split():
            raise CgroupUnavailable(f"cgroup v2 without the cpu controller ({controllers})")
        own = _own_path(2, os.getpid()) or "/"
        return 2, ROOT / own.lstrip("/")
    v1 = ROOT / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists():
        own = _own_path(1, os.getpid()) or "/"
        return 1, v1 / own.lstrip("/")
    raise CgroupUnavailable(
        f"no cgroup v2 cpu controller ({controllers} missing) and no cgroup v1 cpu "
        f"hierarchy ({v1}/cpu.cfs_quota_us missing)"
    )


def _create(percent: float) -> CpuGroup:
    version, parent = _pick_hierarchy()
    quota = max(1000, round(PERIOD_US * percent / 100))  # the kernel's floor is 1 ms
    path = parent / f"tidegate-bench-{os.getpid()}"
    try:
        if version == 2:
            subtree = parent / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
        path.mkdir()
    except OSError as exc:
        raise CgroupUnavailable(f"cannot create a cgroup under {parent}: {exc}") from exc
    try:
        if version == 2:
            (path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(quota))
    except OSError as exc:
        path.rmdir()
        raise CgroupUnavailable(f"cannot set the CPU quota of {path}: {exc}") from exc
    return CpuGroup(path, version, quota, PERIOD_US)


@contextlib.contextmanager
def cpu_group(percent: float) -> Iterator[CpuGroup]:
    """A fresh group with a quota of ``percent`` % of one core; removed on exit."""
    group = _create(percent)
    try:
        yield group
    finally:
        try:
            group.path.rmdir()
        except OSError as exc:
            print(f"note: could not remove {group.path}: {exc}")
