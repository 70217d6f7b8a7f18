"""Keeping drivers running: a driver whose ``run`` fails is restarted, with backoff.

A driver survives its device going away by itself (that is its contract);
``run`` raising is a bug in the driver, not a device error. The supervisor
logs it, shows the driver as failed in `tidegate status`, and starts it again
after the reconnect policy's wait, so one broken driver neither stops the
gateway nor spins.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tidegate.backoff import Backoff, ReconnectSection
from tidegate.driver import Driver, DriverState, Emit

log = logging.getLogger(__name__)

RESTART_POLICY = ReconnectSection(initial_delay=1.0, max_delay=60.0, factor=2.0, jitter=False)


async def supervise(driver: Driver, emit: Emit, policy: ReconnectSection = RESTART_POLICY) -> None:
    """Run ``driver`` until it finishes or the task is cancelled."""
    backoff = Backoff(policy)
    while True:
        started = time.monotonic()
        try:
            await driver.run(emit)
            log.info("driver %s finished", driver.name)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if time.monotonic() - started > policy.max_delay:
                backoff.reset()  # it ran for a good while: this is a new failure
            delay = backoff.next_delay()
            driver.health.set_state(DriverState.FAILED, f"{type(exc).__name__}: {exc}")
            log.exception("driver %s crashed; restarting in %.0f s", driver.name, delay)
            await asyncio.sleep(delay)
