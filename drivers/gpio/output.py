"""The ``gpio`` driver's output mode: one line driven by actions, guarded by an interlock.

The schema and what a line does at start, stop and crash are in
``tidegate.drivers.gpio.config``. The actions layer calls ``set_output``,
``toggle_output`` and ``pulse_output``; ``run`` holds the line open, switches it
off when ``max_on`` or a pulse says so, reports each change, survives the chip
going away, and drives ``on_stop`` when cancelled. Time (the interlock's, the
pulse's, ``max_on``'s) is the backend's clock, so a simulated chip on a fast
virtual clock drives it too.
"""

from __future__ import annotations

import asyncio
import logging

from tidegate.actions.interlock import Interlock
from tidegate.backoff import Backoff
from tidegate.driver import DriverContext, DriverState, Emit
from tidegate.drivers.gpio.backend import GpioBackend, LineSpec
from tidegate.drivers.gpio.config import GpioConfig, GpioOutputConfig
from tidegate.drivers.gpio.driver import GpioDriver
from tidegate.errors import ActionError, ActionRefused, DriverError
from tidegate.event import Event, new_event

_log = logging.getLogger(__name__)

STOP_REPORT_WAIT = 0.5
"""How long a stop waits to hand over its last events (a full pipeline may never take them)."""


class GpioOutputDriver(GpioDriver):
    """Drives one GPIO output line (``mode: output`` names this class)."""

    drives_outputs = True

    def __init__(
        self,
        config: GpioConfig,
        context: DriverContext,
        *,
        backend: GpioBackend | None = None,
    ) -> None:
        super().__init__(config, context, backend=backend)
        if not isinstance(config, GpioOutputConfig):
            raise TypeError(f"GpioOutputDriver runs on mode: output, not {config.mode}")
        self.output = config
        self.interlock = Interlock(config.interlock, self._now, name=config.name)
        self._held: bool | None = None
        """The logical state last driven (kept over an outage, to drive it again)."""
        self._open = False
        self._lock = asyncio.Lock()
        self._rearm = asyncio.Event()
        """Set when a deadline moved or a switch failed: the run loop looks again."""
        self._broken: DriverError | None = None
        self._pulse_end: float | None = None
        self._pulse_cause = ""
        self._reports: asyncio.Queue[Event] = asyncio.Queue()

    # --- what the actions layer calls ---------------------------------------------------

    @property
    def state(self) -> bool | None:
        """The state the line holds; None while it is not open."""
        return self._held if self._open else None

    async def set_output(self, on: bool, *, cause: str) -> bool:
        """Switch the line ``on`` or off; returns the state now held. Raises
        ``ActionRefused`` (interlock) or ``ActionError`` (the line is not open)."""
        async with self._lock:
            self._pulse_end = None  # an explicit switch ends a pulse
            self._switch(on, cause)
            return on

    async def toggle_output(self, *, cause: str) -> bool:
        """Switch the line to the other state; returns the state now held."""
        async with self._lock:
            self._pulse_end = None
            on = not self._require_open()
            self._switch(on, cause)
            return on

    async def pulse_output(self, duration: float, *, cause: str) -> None:
        """On now, off after ``duration`` seconds (by ``run``: a stop ends the pulse and
        ``on_stop`` applies). Refused when the interlock refuses either end."""
        async with self._lock:
            if not duration > 0:
                raise ActionRefused(
                    f"{self.name}: a pulse needs a duration above 0 s", reason="bad_arguments"
                )
            self._require_open()
            try:
                self.interlock.check_pulse(duration)
            except ActionRefused:
                self.health.tally("refused")
                raise
            self._switch(True, cause, checked=True)
            self._pulse_end, self._pulse_cause = self._now() + duration, cause
            self._rearm.set()

    # --- switching ------------------------------------------------------------------------

    def _now(self) -> float:
        return self.backend.now_ns() / 1e9

    def _require_open(self) -> bool:
        if not self._open or self._held is None:
            why = f": {self.health.last_error}" if self.health.last_error else ""
            raise ActionError(
                f"{self.name}: GPIO line {self.output.line!r} on {self.output.chip} "
                f"is not open{why}"
            )
        return self._held

    def _switch(self, on: bool, cause: str, *, checked: bool = False) -> None:
        """Drive the line to ``on`` unless it is there; ``checked``: the interlock
        has agreed already (or must not be asked: ``max_on``, a pulse's end)."""
        if self._require_open() == on:
            return
        if not checked:
            try:
                self.interlock.check(on)
            except ActionRefused:
                self.health.tally("refused")
                raise
        try:
            self.backend.set_level(int(on))
        except DriverError as exc:
            # The run loop reopens the line; the caller hears it failed now.
            self._open, self._broken = False, exc
            self._rearm.set()
            raise ActionError(f"{self.name}: {exc}") from exc
        self._record(on, cause)
        self._rearm.set()

    def _record(self, on: bool, cause: str) -> None:
        self._held = on
        self.interlock.switched(on)
        if cause != "initial":  # the start drives the line; it does not switch it
            self.health.tally("switches")
        if self.output.report:
            wall = self.backend.to_wall(self.backend.now_ns())
            self._reports.put_nowait(
                new_event(self.name, self.output.event, int(on), tags={"cause": cause}, time=wall)
            )

    # --- the run loop ----------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        # Reports go out from their own task: a pipeline that holds emit must not
        # hold back max_on or a pulse's end.
        reporter = asyncio.create_task(self._report(emit), name=f"{self.name}-reports")
        backoff = Backoff(self.output.reconnect)
        try:
            while True:
                try:
                    await self._hold(backoff)
                except Exception as exc:  # never out of run: count, log, reopen
                    self._open = False
                    await self._reopen_after(exc, backoff)
        finally:
            try:
                self._stop()
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
                await self._last_reports(emit)
            finally:
                self._open = False
                self.backend.close()
                self.health.set_state(DriverState.STOPPED)

    async def _hold(self, backoff: Backoff) -> None:
        """One open line, until the backend fails."""
        cfg = self.output
        first = self._held is None
        want = cfg.initial == "on" if first else bool(self._held)
        opened = self.backend.open(
            LineSpec(
                line=cfg.line,
                active_low=cfg.active_low,
                consumer=f"tidegate:{cfg.name}"[:31],  # the kernel keeps 31 characters
                direction="output",
                output_value=int(want),
            )
        )
        self._broken = None
        self._open = True
        if first:
            self._record(want, "initial")
        self.health.set_state(DriverState.RUNNING)
        backoff.reset()
        _log.info(
            "%s: output line %s (%s) on %s open, %s",
            self.name,
            opened.offset,
            opened.name or "unnamed",
            cfg.chip,
            "on" if want else "off",
        )
        while True:
            await self._enforce()
            deadlines = [t for t in (self.interlock.off_due(), self._pulse_end) if t is not None]
            deadline_ns = round(min(deadlines) * 1e9) if deadlines else None
            self._rearm.clear()
            await self._wait(deadline_ns)
            if self._broken is not None:
                raise self._broken

    async def _wait(self, deadline_ns: int | None) -> None:
        """Until ``deadline_ns`` (backend clock), a rearm, or the chip failing. Waiting
        for edges on an output line is how the backend tells that the chip went away."""
        watch = asyncio.create_task(self.backend.wait_edges(deadline_ns))
        rearm = asyncio.create_task(self._rearm.wait())
        try:
            await asyncio.wait({watch, rearm}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watch, rearm):
                task.cancel()
            # Not suppress(CancelledError) around each await: that would swallow a
            # cancellation of run itself arriving right then.
            await asyncio.gather(watch, rearm, return_exceptions=True)
        if watch.done() and not watch.cancelled():
            watch.result()  # raises DriverError when the chip went away

    async def _enforce(self) -> None:
        """Switch off what a pulse's end or ``max_on`` wants off by now."""
        async with self._lock:
            now = self._now()
            if self._pulse_end is not None and now >= self._pulse_end:
                self._pulse_end = None
                self._switch(False, self._pulse_cause, checked=True)
            due = self.interlock.off_due()
            if due is not None and now >= due:
                _log.warning(
                    "%s: on for its max_on of %gs; switching it off",
                    self.name,
                    self.output.interlock.max_on,
                )
                self._switch(False, "max_on", checked=True)

    def _stop(self) -> None:
        """Drive ``on_stop`` (a clean stop); the line is released after."""
        on_stop = self.output.on_stop
        if not self._open or on_stop == "keep" or self._held is None:
            return
        on = on_stop == "on"
        if on == self._held:
            return
        try:
            self.backend.set_level(int(on))
        except DriverError as exc:
            _log.warning("%s: cannot drive on_stop %s: %s", self.name, on_stop, exc)
            return
        self._record(on, "stop")

    async def _report(self, emit: Emit) -> None:
        while True:
            batch = [await self._reports.get()]
            while not self._reports.empty():
                batch.append(self._reports.get_nowait())
            await emit(batch)
            self.health.count(len(batch))

    async def _last_reports(self, emit: Emit) -> None:
        """What is left to report at a stop (``on_stop``'s switch), if the pipeline takes it."""
        batch: list[Event] = []
        while not self._reports.empty():
            batch.append(self._reports.get_nowait())
        if not batch:
            return
        try:
            async with asyncio.timeout(STOP_REPORT_WAIT):
                await emit(batch)
            self.health.count(len(batch))
        except TimeoutError:
            _log.warning(
                "%s: %d state event(s) not reported: the pipeline did not take them",
                self.name,
                len(batch),
            )
