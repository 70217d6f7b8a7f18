"""The ``echo`` driver's runtime."""

from __future__ import annotations

import asyncio
import itertools

from tidegate.driver import Driver, DriverState, Emit
from tidegate.event import new_event

from .config import EchoConfig


class EchoDriver(Driver[EchoConfig]):
    """Emits the configured words, one event each, forever."""

    async def run(self, emit: Emit) -> None:
        self.health.set_state(DriverState.RUNNING)
        try:
            for word in itertools.cycle(self.config.words):
                await emit([new_event(self.name, "word", word)])
                self.health.count(1)
                await asyncio.sleep(self.config.every)
        finally:
            self.health.set_state(DriverState.STOPPED)
