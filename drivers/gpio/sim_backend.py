"""``GpioBackend`` on a simulated chip (``tidegate.drivers.gpio.sim``): what a driver
opens, waits on, reads and drives, as on the real gpiod backend."""

from __future__ import annotations

from collections.abc import Iterable

from tidegate.drivers.gpio.backend import LineEdge, LineSpec, OpenedLine
from tidegate.drivers.gpio.sim import SimChip, _SimRequest
from tidegate.errors import DriverError


class SimBackend:
    """``GpioBackend`` on a ``SimChip``. ``autoplay`` is a timeline played on the
    line the first time it is opened (how the demo's generators start)."""

    def __init__(self, chip: SimChip, *, autoplay: Iterable[tuple[int, int]] | None = None) -> None:
        self.chip = chip
        self._autoplay = autoplay
        self._request: _SimRequest | None = None

    def open(self, spec: LineSpec) -> OpenedLine:
        self.close()
        self._request, opened = self.chip._open(spec)
        if self._autoplay is not None:
            self.chip.play(opened.offset, self._autoplay)
            self._autoplay = None
        return opened

    def close(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            self.chip._close(request)

    def _live(self) -> _SimRequest:
        if self._request is None:
            raise DriverError(f"no line is open on {self.chip.label}")
        return self._request

    async def wait_edges(self, deadline_ns: int | None) -> list[LineEdge]:
        return await self.chip._wait(self._live(), deadline_ns)

    def read_level(self) -> int:
        return self.chip._read(self._live())

    def set_level(self, level: int) -> None:
        self.chip._set(self._live(), level)

    def now_ns(self) -> int:
        return self.chip.now_ns()

    def to_wall(self, timestamp_ns: int) -> float:
        return self.chip.to_wall(timestamp_ns)
