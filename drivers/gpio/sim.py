"""A simulated GPIO chip that plays edge timelines (``timelines``) on its lines.

``SimChip`` turns timelines into edge events the way the kernel does for a v2
line request (edge detection, active-low, and optionally its own debouncer),
and ``SimBackend`` (``sim_backend``) serves them through the same
``GpioBackend`` interface as the real gpiod backend. The chip runs in one of two clocks:

- *fast* (``realtime=False``, for tests): a virtual clock that jumps straight
  to the next thing that happens, as far as ``run_until`` (or the end of the
  timelines played) allows. The driver's intervals follow it, so a two-second
  1 kHz pulse train is counted in milliseconds and always the same way.
- *real time* (``realtime=True``, for the demo): edges happen when the
  monotonic clock reaches them; waits sleep until then without polling.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from tidegate.drivers.gpio.backend import READ_BATCH, LineEdge, LineSpec, OpenedLine
from tidegate.errors import DriverError


@dataclass(eq=False)
class _SimRequest:
    """One line request: its settings, its event queue, its debounce state."""

    offset: int
    spec: LineSpec
    kernel_debounce: bool
    debounced_level: int
    """Physical level the chip's debouncer last reported (or found at request)."""
    queue: deque[LineEdge] = field(default_factory=deque)
    last_raw_ns: int = 0
    settle_at_ns: int | None = None
    live: bool = True


@dataclass(eq=False)
class _SimLine:
    offset: int
    name: str
    level: int = 0
    """Physical level."""
    timelines: deque[Iterator[tuple[int, int]]] = field(default_factory=deque)
    anchors: deque[int] = field(default_factory=deque)
    upcoming: tuple[int, int] | None = None
    """The next (absolute t_ns, level) point, taken from the timelines."""
    request: _SimRequest | None = None
    history: list[tuple[int, int]] = field(default_factory=list)
    """(t_ns, physical level) each time an output request drove the line."""

    def peek(self) -> tuple[int, int] | None:
        while self.upcoming is None and self.timelines:
            point = next(self.timelines[0], None)
            if point is None:
                self.timelines.popleft()
                self.anchors.popleft()
            else:
                self.upcoming = (self.anchors[0] + point[0], point[1])
        return self.upcoming


class SimChip:
    """A GPIO chip whose lines follow played timelines.

    Lines have names (``line_names``) and can be looked up by name or offset the
    way ``gpiod.Chip.line_offset_from_id`` does. With ``kernel_debounce`` the
    chip honours ``LineSpec.debounce_ns`` itself, like gpiolib's debouncer: an
    edge is reported once the level has been stable for the period, stamped
    with the time of the last raw edge.
    """

    def __init__(
        self,
        *,
        label: str = "gpiochip0",
        num_lines: int = 32,
        line_names: Mapping[int, str] | None = None,
        levels: Mapping[int, int] | None = None,
        kernel_debounce: bool = False,
        realtime: bool = False,
        wall_origin: float | None = None,
    ) -> None:
        self.label = label
        self.kernel_debounce = kernel_debounce
        self.realtime = realtime
        self.present = True
        names = line_names or {}
        start_levels = levels or {}
        self._lines = [
            _SimLine(n, names.get(n, ""), start_levels.get(n, 0)) for n in range(num_lines)
        ]
        self._now = time.monotonic_ns() if realtime else 0
        self._origin_ns = self._now
        self._wall_origin = time.time() if wall_origin is None else wall_origin
        self._horizon: float = 0 if not realtime else math.inf
        self._changed = asyncio.Event()
        self._caught_up = asyncio.Event()

    # -- test and demo controls --

    async def settled(self) -> None:
        """Fast clock: return once a waiter has taken every edge up to the horizon
        and is blocked waiting for more (meant for tests with one driver per chip).
        Together with ``run_until`` this says "the driver has seen all of it"."""
        await self._caught_up.wait()

    def line_offset(self, line: int | str) -> int:
        """Offset of a line given by offset, by name, or by offset as a string."""
        if isinstance(line, str):
            for sim_line in self._lines:
                if sim_line.name == line:
                    return sim_line.offset
            try:
                line = int(line)
            except ValueError:
                raise ValueError(f"no line named {line!r} on {self.label}") from None
        if not 0 <= line < len(self._lines):
            raise ValueError(f"line offset {line} out of range on {self.label}")
        return line

    def now_ns(self) -> int:
        return time.monotonic_ns() if self.realtime else self._now

    def to_wall(self, timestamp_ns: int) -> float:
        return self._wall_origin + (timestamp_ns - self._origin_ns) / 1e9

    def play(self, line: int | str, timeline: Iterable[tuple[int, int]],
             *, at_ns: int | None = None) -> int | None:
        """Queue ``timeline`` on ``line``, its times relative to ``at_ns`` (default:
        now). A finite timeline also lets the fast clock run to its end; returns
        that end (absolute), or None for a lazy one, which lets it run freely."""
        sim_line = self._lines[self.line_offset(line)]
        anchor = self.now_ns() if at_ns is None else at_ns
        end: int | None = None
        if isinstance(timeline, Sequence):
            points = list(timeline)
            if any(b[0] < a[0] for a, b in itertools.pairwise(points)):
                raise ValueError("timeline is not in time order")
            if points and points[0][0] < 0:
                raise ValueError("timeline starts before it is played")
            end = anchor + (points[-1][0] if points else 0)
            self._horizon = max(self._horizon, end)
            sim_line.timelines.append(iter(points))
        else:
            self._horizon = math.inf
            sim_line.timelines.append(iter(timeline))
        sim_line.anchors.append(anchor)
        self._notify()
        return end

    def run_until(self, t_ns: int) -> None:
        """Let the fast clock run as far as ``t_ns`` (waits move it; this doesn't)."""
        self._horizon = max(self._horizon, t_ns)
        self._notify()

    def unplug(self) -> None:
        """The chip goes away: open requests fail, new ones are refused."""
        self.present = False
        for sim_line in self._lines:
            if sim_line.request is not None:
                sim_line.request.live = False
                sim_line.request = None
        self._notify()

    def plug(self) -> None:
        """The chip is back; drivers reopen their lines."""
        self.present = True
        self._notify()

    # -- what SimBackend uses --

    def _open(self, spec: LineSpec) -> tuple[_SimRequest, OpenedLine]:
        if not self.present:
            raise DriverError(f"GPIO chip {self.label} is not present")
        try:
            offset = self.line_offset(spec.line)
        except ValueError as exc:
            raise DriverError(str(exc)) from exc
        sim_line = self._lines[offset]
        if sim_line.request is not None:
            raise DriverError(f"line {offset} on {self.label} is busy")
        kernel_debounce = self.kernel_debounce and spec.debounce_ns > 0
        request = _SimRequest(offset, spec, kernel_debounce, sim_line.level)
        sim_line.request = request
        if spec.direction == "output":
            self._drive(sim_line, spec.output_value ^ int(spec.active_low))
        return request, OpenedLine(offset, sim_line.name, kernel_debounce)

    def _close(self, request: _SimRequest) -> None:
        request.live = False
        sim_line = self._lines[request.offset]
        if sim_line.request is request:
            sim_line.request = None

    def driven(self, line: int | str) -> int | None:
        """The physical level an output request drives ``line`` to; None when none
        holds it (a released line keeps its level, as a Raspberry Pi's does)."""
        sim_line = self._lines[self.line_offset(line)]
        request = sim_line.request
        return sim_line.level if request and request.spec.direction == "output" else None

    def history(self, line: int | str) -> list[tuple[int, int]]:
        """(t_ns, physical level) each time an output request drove ``line``."""
        return list(self._lines[self.line_offset(line)].history)

    def _drive(self, sim_line: _SimLine, physical: int) -> None:
        sim_line.level = physical
        sim_line.history.append((self.now_ns(), physical))
        self._notify()

    def _set(self, request: _SimRequest, level: int) -> None:
        self._check(request)
        if request.spec.direction != "output":  # the kernel says EPERM
            raise DriverError(f"line {request.offset} on {self.label} is not an output")
        self._drive(self._lines[request.offset], level ^ int(request.spec.active_low))

    def _check(self, request: _SimRequest) -> None:
        if not request.live:
            raise DriverError(f"GPIO chip {self.label} went away")

    def _read(self, request: _SimRequest) -> int:
        self._check(request)
        return self._lines[request.offset].level ^ int(request.spec.active_low)

    def _report(self, request: _SimRequest, physical: int, timestamp_ns: int) -> None:
        rising = physical ^ int(request.spec.active_low) == 1
        if request.spec.edges in ("both", "rising" if rising else "falling"):
            request.queue.append(LineEdge(request.offset, rising, timestamp_ns))

    def _next_times(self) -> tuple[int | None, int | None]:
        """When the next settle timer fires, and when the next level change is."""
        settle = [
            ln.request.settle_at_ns
            for ln in self._lines
            if ln.request is not None and ln.request.settle_at_ns is not None
        ]
        changes = [point[0] for ln in self._lines if (point := ln.peek()) is not None]
        return (min(settle) if settle else None, min(changes) if changes else None)

    def _advance(self, target_ns: int, batch_for: _SimRequest) -> None:
        """Make everything up to ``target_ns`` happen, in time order; stop early
        once ``batch_for`` holds a full batch."""
        before = self._now
        happened = False
        while len(batch_for.queue) < READ_BATCH:
            settle, change = self._next_times()
            # Settle timers first on a tie: a level stable for exactly the period counts.
            if settle is not None and settle <= target_ns and (change is None or settle <= change):
                self._now = max(self._now, settle)
                self._settle(settle)
            elif change is not None and change <= target_ns:
                self._now = max(self._now, change)
                self._change(change)
            else:
                self._now = max(self._now, target_ns)
                break
            happened = True
        # Other waiters care about new edges, and on the fast clock about time passing
        # (their deadlines); waking them for nothing would have them wake us back.
        if happened or (not self.realtime and self._now != before):
            self._notify()

    def _settle(self, t_ns: int) -> None:
        for sim_line in self._lines:
            request = sim_line.request
            if request is not None and request.settle_at_ns == t_ns:
                request.settle_at_ns = None
                if sim_line.level != request.debounced_level:
                    request.debounced_level = sim_line.level
                    self._report(request, sim_line.level, request.last_raw_ns)

    def _change(self, t_ns: int) -> None:
        for sim_line in self._lines:
            point = sim_line.upcoming
            if point is None or point[0] != t_ns:
                continue
            sim_line.upcoming = None
            if point[1] == sim_line.level:
                continue
            sim_line.level = point[1]
            request = sim_line.request
            if request is None:
                continue
            if request.kernel_debounce:
                request.last_raw_ns = t_ns
                request.settle_at_ns = t_ns + request.spec.debounce_ns
            else:
                self._report(request, sim_line.level, t_ns)

    def _notify(self) -> None:
        self._caught_up.clear()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _drain(self, request: _SimRequest) -> list[LineEdge]:
        edges = list(request.queue)
        request.queue.clear()
        return edges

    async def _wait(self, request: _SimRequest, deadline_ns: int | None) -> list[LineEdge]:
        if self.realtime:
            return await self._wait_realtime(request, deadline_ns)
        return await self._wait_fast(request, deadline_ns)

    async def _wait_fast(self, request: _SimRequest, deadline_ns: int | None) -> list[LineEdge]:
        # Always give the loop a turn, as a real wait would: a caller that keeps
        # asking with a past deadline must not starve everything else.
        await asyncio.sleep(0)
        while True:
            self._check(request)
            if request.queue:
                return self._drain(request)
            if deadline_ns is not None and self._now >= deadline_ns:
                return []
            settle, change = self._next_times()
            upcoming = min((t for t in (settle, change) if t is not None), default=None)
            target: float = deadline_ns if deadline_ns is not None else (
                upcoming if upcoming is not None else math.inf)
            target = min(target, self._horizon)
            can_move = target > self._now or (upcoming is not None and upcoming <= target)
            if math.isinf(target) or not can_move:
                # Nothing more happens until the test plays more or lets time run.
                changed = self._changed
                self._caught_up.set()
                await changed.wait()
                continue
            self._advance(int(target), request)
            # Let the rest of the pipeline run between steps of virtual time.
            await asyncio.sleep(0)

    async def _wait_realtime(self, request: _SimRequest, deadline_ns: int | None
                             ) -> list[LineEdge]:
        while True:
            self._check(request)
            now = time.monotonic_ns()
            self._advance(now, request)
            if request.queue:
                return self._drain(request)
            if deadline_ns is not None and now >= deadline_ns:
                return []
            settle, change = self._next_times()
            wake = min((t for t in (settle, change, deadline_ns) if t is not None), default=None)
            changed = self._changed
            try:
                timeout = None if wake is None else max(0.0, (wake - now) / 1e9)
                async with asyncio.timeout(timeout):
                    await changed.wait()
            except TimeoutError:
                pass
