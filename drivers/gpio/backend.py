"""The GPIO backend interface, and its implementation on libgpiod v2.

The ``gpio`` driver talks to a line through a ``GpioBackend``: open a line with
some settings, wait for its edge events, read its level, and tell the time on
the clock the edge timestamps use. Two implementations exist: ``GpiodBackend``
(real hardware, the ``gpiod`` package, imported lazily because it is the
optional extra ``tidegate[gpio]``) and ``SimBackend`` in ``gpio.sim_backend`` (a
simulated chip driven by generated edge timelines).

Levels and edges are *logical*: with ``active_low`` the backend inverts them, as
the kernel does for a v2 line request, so the driver never thinks about wiring.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import Any, Literal, Protocol

from tidegate.drivers.gpio.config import BiasName, EdgeDetection
from tidegate.errors import DriverError

_log = logging.getLogger(__name__)

READ_BATCH = 1024
"""Most edge events one ``wait_edges`` call returns; the rest wait for the next call."""


@dataclass(frozen=True, slots=True)
class LineEdge:
    """One edge event on a line, as the chip reports it."""

    line: int
    """Offset of the line on its chip."""
    rising: bool
    """True for inactive → active (logical), False for active → inactive."""
    timestamp_ns: int
    """On the backend's monotonic clock (``GpioBackend.now_ns``)."""

    @property
    def level(self) -> int:
        """The logical level the line has after this edge."""
        return 1 if self.rising else 0


@dataclass(frozen=True, slots=True)
class LineSpec:
    """What the driver asks of a line when it opens it."""

    line: int | str
    """Offset, or line name (``GPIO17``); a numeric string is an offset."""
    edges: EdgeDetection = "none"
    bias: BiasName = "as-is"
    active_low: bool = False
    debounce_ns: int = 0
    """Ask the chip to debounce (0: don't). ``OpenedLine.kernel_debounce`` tells
    whether it did; if not, the driver debounces in software."""
    consumer: str = "tidegate"
    direction: Literal["input", "output"] = "input"
    """An output line is driven, not watched: ``edges`` and ``debounce_ns`` don't apply."""
    output_value: int = 0
    """The logical level an output line is driven to as it is requested (1: active)."""


@dataclass(frozen=True, slots=True)
class OpenedLine:
    """What the backend found when it opened the line."""

    offset: int
    name: str
    kernel_debounce: bool
    """True when the chip itself debounces the edge events it reports."""


class GpioBackend(Protocol):
    """A source of edge events and levels for one line.

    ``open`` and ``close`` are quick system calls, so they are synchronous;
    ``wait_edges`` is the only call that waits, and it must not block the event
    loop nor busy-poll.
    """

    def open(self, spec: LineSpec) -> OpenedLine:
        """Request the line. Raises ``DriverError`` if the chip or line is missing."""
        ...

    def close(self) -> None:
        """Release the line; safe to call when nothing is open."""
        ...

    async def wait_edges(self, deadline_ns: int | None) -> list[LineEdge]:
        """Edge events in time order, waiting for at least one until ``deadline_ns``
        (on ``now_ns``'s clock; ``None``: no deadline). Returns ``[]`` once the
        deadline has passed. Raises ``DriverError`` when the chip went away."""
        ...

    def read_level(self) -> int:
        """The line's logical level now (0 or 1). Raises ``DriverError``."""
        ...

    def set_level(self, level: int) -> None:
        """Drive an output line to a logical level (0 or 1). Raises ``DriverError``."""
        ...

    def now_ns(self) -> int:
        """Now, on the clock the edge timestamps use. The driver's intervals
        follow this clock, so a simulated chip can run faster than real time."""
        ...

    def to_wall(self, timestamp_ns: int) -> float:
        """Convert a timestamp on ``now_ns``'s clock to epoch seconds."""
        ...


def import_gpiod() -> ModuleType:
    """The ``gpiod`` module, or a DriverError that says how to get it."""
    try:
        return importlib.import_module("gpiod")
    except ImportError as exc:
        raise DriverError(
            "gpio backend 'gpiod' needs the libgpiod v2 Python bindings: "
            "install tidegate[gpio] (pip install 'tidegate[gpio]'), "
            "or use 'backend: sim' to run without hardware"
        ) from exc


def chip_path(chip: str) -> str:
    """``gpiochip0`` → ``/dev/gpiochip0``; a path is kept as it is."""
    return chip if "/" in chip else f"/dev/{chip}"


def _settings_kwargs(gpiod: Any, spec: LineSpec) -> dict[str, Any]:
    line = gpiod.line
    edges = {
        "none": line.Edge.NONE,
        "rising": line.Edge.RISING,
        "falling": line.Edge.FALLING,
        "both": line.Edge.BOTH,
    }
    biases = {
        "as-is": line.Bias.AS_IS,
        "pull-up": line.Bias.PULL_UP,
        "pull-down": line.Bias.PULL_DOWN,
        "disabled": line.Bias.DISABLED,
    }
    if spec.direction == "output":
        return {
            "direction": line.Direction.OUTPUT,
            # Driven from the request on: no glitch to the other level in between.
            "output_value": line.Value.ACTIVE if spec.output_value else line.Value.INACTIVE,
            "bias": biases[spec.bias],
            "active_low": spec.active_low,
        }
    return {
        "direction": line.Direction.INPUT,
        "edge_detection": edges[spec.edges],
        "bias": biases[spec.bias],
        "active_low": spec.active_low,
        # The kernel takes microseconds.
        "debounce_period": timedelta(microseconds=spec.debounce_ns // 1000),
        # Monotonic, so that intervals and debounce survive wall-clock jumps.
        "event_clock": line.Clock.MONOTONIC,
    }


class GpiodBackend:
    """A line on a real GPIO chip, through libgpiod v2's Python bindings."""

    def __init__(self, chip: str) -> None:
        self._gpiod: Any = import_gpiod()
        self._path = chip_path(chip)
        self._request: Any = None
        self._offset = -1

    def open(self, spec: LineSpec) -> OpenedLine:
        self.close()
        gpiod = self._gpiod
        try:
            chip = gpiod.Chip(self._path)
        except (OSError, ValueError) as exc:
            raise DriverError(f"cannot open GPIO chip {self._path}: {exc}") from exc
        try:
            try:
                offset = int(chip.line_offset_from_id(spec.line))
            except (OSError, ValueError) as exc:
                raise DriverError(f"no GPIO line {spec.line!r} on {self._path}: {exc}") from exc
            settings = gpiod.LineSettings(**_settings_kwargs(gpiod, spec))
            self._request = chip.request_lines({offset: settings}, consumer=spec.consumer)
            self._offset = offset
            # The line info says whether the kernel took the debounce period (the
            # chip's own debouncer, or gpiolib's fallback on kernels that have it).
            info = chip.get_line_info(offset)
            return OpenedLine(
                offset=offset,
                name=str(info.name or ""),
                kernel_debounce=bool(spec.debounce_ns and info.debounced),
            )
        except (OSError, ValueError) as exc:
            self.close()
            raise DriverError(
                f"cannot request GPIO line {spec.line!r} on {self._path}: {exc}"
            ) from exc
        finally:
            # The request lives on without the chip handle.
            chip.close()

    def close(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            try:
                request.release()
            except Exception as exc:  # the chip is gone: nothing is left to release
                _log.debug("releasing GPIO line on %s: %s", self._path, exc)

    def _live_request(self) -> Any:
        if self._request is None:
            raise DriverError(f"GPIO line on {self._path} is not open")
        return self._request

    def _read_ready(self, request: Any) -> list[LineEdge]:
        edges: list[LineEdge] = []
        rising = self._gpiod.EdgeEvent.Type.RISING_EDGE
        while len(edges) < READ_BATCH and request.wait_edge_events(0):
            for event in request.read_edge_events():
                edges.append(
                    LineEdge(
                        line=int(event.line_offset),
                        rising=event.event_type == rising,
                        timestamp_ns=int(event.timestamp_ns),
                    )
                )
        return edges

    async def wait_edges(self, deadline_ns: int | None) -> list[LineEdge]:
        request = self._live_request()
        try:
            ready = self._read_ready(request)
            if ready:
                return ready
            loop = asyncio.get_running_loop()
            readable: asyncio.Future[None] = loop.create_future()

            def wake() -> None:
                if not readable.done():
                    readable.set_result(None)

            fd = int(request.fd)
            # Registered only while waiting: the fd stays readable until read, and
            # a level-triggered reader left in place would spin the loop.
            loop.add_reader(fd, wake)
            try:
                timeout = None if deadline_ns is None else (deadline_ns - self.now_ns()) / 1e9
                if timeout is None or timeout > 0:
                    # Not wait_for: on 3.11 it can lose a cancellation (see serial's poll).
                    async with asyncio.timeout(timeout):
                        await readable
            except TimeoutError:
                pass
            finally:
                loop.remove_reader(fd)
            # Also after a timeout: events already queued belong before the deadline.
            return self._read_ready(request)
        except (OSError, RuntimeError) as exc:
            # ENODEV and friends: the chip was unbound or unplugged.
            raise DriverError(f"GPIO line on {self._path} failed: {exc}") from exc

    def read_level(self) -> int:
        request = self._live_request()
        try:
            value = request.get_value(self._offset)
        except (OSError, RuntimeError) as exc:
            raise DriverError(f"cannot read GPIO line on {self._path}: {exc}") from exc
        return 1 if value == self._gpiod.line.Value.ACTIVE else 0

    def set_level(self, level: int) -> None:
        request = self._live_request()
        values = self._gpiod.line.Value
        try:
            request.set_value(self._offset, values.ACTIVE if level else values.INACTIVE)
        except (OSError, RuntimeError) as exc:
            raise DriverError(f"cannot drive GPIO line on {self._path}: {exc}") from exc

    def now_ns(self) -> int:
        # CPython's monotonic clock is CLOCK_MONOTONIC on Linux, the clock the
        # kernel stamps edge events with when event_clock is MONOTONIC.
        return time.monotonic_ns()

    def to_wall(self, timestamp_ns: int) -> float:
        return time.time() - (time.monotonic_ns() - timestamp_ns) / 1e9
