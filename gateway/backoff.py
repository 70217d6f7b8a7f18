"""Reconnecting: one policy and one config section for everything that retries.

The uplink's broker connection, the ``mqtt`` driver, serial ports, GPIO chips
and the driver supervisor all wait the same way between attempts: the first
wait is ``initial_delay``, each failed attempt multiplies it by ``factor`` up
to ``max_delay``, and a success starts again from ``initial_delay``. With
``jitter`` each wait is drawn between half and all of that delay, so a fleet of
gateways that lost one broker does not come back at the same instant.

```yaml
reconnect: {initial_delay: 500ms, max_delay: 30s, factor: 2, jitter: true}
```
"""

from __future__ import annotations

import random
from collections.abc import Callable

from pydantic import Field, model_validator

from tidegate.config.types import Duration, Section


class ReconnectSection(Section):
    """How long to wait between attempts to reach a device or a broker."""

    initial_delay: Duration = Field(0.5, gt=0, description="First wait after a failure.")
    max_delay: Duration = Field(30.0, gt=0, description="Longest wait between attempts.")
    factor: float = Field(
        2.0, ge=1.0, le=10.0, description="Each failed attempt multiplies the wait by this."
    )
    jitter: bool = Field(
        True,
        description="Draw each wait between half and all of the delay, so many gateways "
        "do not retry in step.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ReconnectSection:
        if self.initial_delay > self.max_delay:
            raise ValueError("initial_delay must not exceed max_delay")
        return self

    def delay(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``attempt`` (1 is the first retry)."""
        exponent = min(max(attempt, 1) - 1, 64)
        ceiling = min(self.max_delay, self.initial_delay * self.factor**exponent)
        if not self.jitter:
            return ceiling
        return ceiling / 2 + draw() * ceiling / 2


class Backoff:
    """The waits of one connection: longer after each failure, reset by a success."""

    def __init__(
        self, policy: ReconnectSection, draw: Callable[[], float] = random.random
    ) -> None:
        self.policy = policy
        self._draw = draw
        self.failures = 0

    def next_delay(self) -> float:
        """Count one more failure; the wait before the next attempt."""
        self.failures += 1
        return self.policy.delay(self.failures, self._draw)

    def reset(self) -> None:
        """The connection works again: the next failure waits ``initial_delay``."""
        self.failures = 0
