"""Interlocks: the rules that guard one output against being switched too often.

A relay that drives a compressor, a pump or a vent motor wears out, or damages
what it drives, when it is switched on and off too fast; a heater left on by a
lost "off" is a hazard. ``Interlock`` keeps one output's recent switches and
says whether switching it now would break a rule:

- ``min_on``: once on, it stays on at least this long (switching off is refused);
- ``min_off``: once off, it stays off at least this long (switching on is refused);
- ``max_on``: once on this long, it is switched off (``off_due`` says when; the
  output's owner does the switching);
- ``max_switches_per_hour``: switching on is refused while the last hour (a
  sliding window) already holds this many switches, on or off. Switching off is
  never refused for it, so this rule alone can never leave a load on (the off
  still counts).

Setting the state the output already has is not a switch and is never refused.
The first switch recorded (the state driven when the gateway starts) starts the
timers: after a restart the line may just have changed, so ``min_off`` holds
from then. The class does no I/O; time comes from an injected monotonic clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from pydantic import Field, model_validator

from tidegate.config.types import Duration, Section
from tidegate.errors import ActionRefused
from tidegate.wording import count

HOUR = 3600.0


class InterlockSection(Section):
    """Rules that guard one output; every rule is off unless set."""

    min_on: Duration | None = Field(
        default=None,
        gt=0,
        description="Once on, the output stays on at least this long: switching it off "
        "sooner is refused.",
    )
    min_off: Duration | None = Field(
        default=None,
        gt=0,
        description="Once off, the output stays off at least this long: switching it on "
        "sooner is refused (e.g. `3m` for a compressor).",
    )
    max_on: Duration | None = Field(
        default=None,
        gt=0,
        description="The output is switched off after being on this long, whoever switched "
        "it on; a pulse longer than this is refused.",
    )
    max_switches_per_hour: int | None = Field(
        default=None,
        gt=0,
        description="Switching on is refused while the last hour already holds this many "
        "switches (on or off); switching off is never refused for it.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> InterlockSection:
        if self.min_on is not None and self.max_on is not None and self.min_on > self.max_on:
            raise ValueError("min_on must not exceed max_on")
        return self


def _seconds(value: float, *, up: bool = False) -> str:
    """A duration for a message, to a tenth of a second; ``up`` rounds up, so that
    "try again in" is never too early (and down otherwise, so "off for" never is)."""
    tenths = math.ceil(value * 10 - 1e-9) if up else math.floor(value * 10 + 1e-9)
    return f"{tenths / 10:g} s"


class Interlock:
    """One output's interlock state: its current state, since when, and its switches
    in the last hour. ``check`` before switching, ``switched`` after."""

    def __init__(
        self, config: InterlockSection, clock: Callable[[], float], *, name: str = "output"
    ) -> None:
        """``clock`` is monotonic seconds; ``name`` starts every refusal's message."""
        self.config = config
        self._clock = clock
        self._name = name
        self._on: bool | None = None
        """None until the first switch is recorded."""
        self._since = 0.0
        self._switches: deque[float] = deque()

    @property
    def on(self) -> bool | None:
        """The state last recorded; None before the first."""
        return self._on

    def check(self, on: bool) -> None:
        """Raise ``ActionRefused`` (reason ``interlock``) if switching to ``on`` now
        would break a rule; return if it would not, or if the state is already ``on``."""
        if self._on is None or self._on == on:
            if self._on is None and on:
                self._check_rate(self._clock())
            return
        now = self._clock()
        held = now - self._since
        minimum = self.config.min_off if on else self.config.min_on
        if minimum is not None and held < minimum:
            self._refuse(
                f"{'off' if on else 'on'} for {_seconds(held)} of its {_seconds(minimum)} "
                f"minimum; try again in {_seconds(minimum - held, up=True)}"
            )
        if on:
            self._check_rate(now)

    def check_pulse(self, duration: float) -> None:
        """Raise ``ActionRefused`` unless a pulse of ``duration`` seconds may start now:
        switching on must be allowed, and the pulse must fit between ``min_on`` (its
        off would be refused) and ``max_on``."""
        max_on, min_on = self.config.max_on, self.config.min_on
        if max_on is not None and duration > max_on:
            self._refuse(f"a {_seconds(duration)} pulse exceeds max_on {_seconds(max_on)}")
        held = self._clock() - self._since if self._on else 0.0
        if min_on is not None and held + duration < min_on:
            self._refuse(f"a {_seconds(duration)} pulse is shorter than min_on {_seconds(min_on)}")
        self.check(True)

    def switched(self, on: bool) -> None:
        """Record that the output is now ``on``; the same state again is no switch."""
        if self._on == on:
            return
        now = self._clock()
        self._on, self._since = on, now
        self._switches.append(now)
        self._forget(now)

    def off_due(self) -> float | None:
        """The monotonic time by which ``max_on`` wants the output off; None when it
        is off, or without ``max_on``."""
        if not self._on or self.config.max_on is None:
            return None
        return self._since + self.config.max_on

    def _check_rate(self, now: float) -> None:
        limit = self.config.max_switches_per_hour
        if limit is None:
            return
        self._forget(now)
        if len(self._switches) >= limit:
            wait = self._switches[-limit] + HOUR - now
            self._refuse(
                f"switched {count(len(self._switches), 'time')} in the last hour, "
                f"its maximum is {limit}; try again in {_seconds(wait, up=True)}"
            )

    def _forget(self, now: float) -> None:
        """Drop switches that left the one-hour window."""
        while self._switches and self._switches[0] <= now - HOUR:
            self._switches.popleft()

    def _refuse(self, why: str) -> None:
        raise ActionRefused(f"{self._name}: {why}", reason="interlock")
