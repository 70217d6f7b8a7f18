"""What the operators take for a step back of the gateway clock.

A ``time: processing`` rule is ticked with the gateway's wall clock, which a
device without a real-time clock may set back (NTP correcting a clock that ran
ahead). Ticks of ``time: event`` rules (the largest event time seen) and of
``tidegate rules test`` (the replayed events' time) never go back. An operator
whose state is measured against the clock (windows, ``dedup``) treats a tick
more than ``CLOCK_STEP_BACK`` before its clock as a step: waiting for the clock
to catch up could stall it for as long as the step, so it starts again from the
new time and counts the step (``clock_jumps``). A smaller step back is jitter
and is ignored: the clock never runs backwards.
"""

from __future__ import annotations

CLOCK_STEP_BACK = 1.0
"""Seconds: a tick further back than this before the operator's clock is a clock step."""
