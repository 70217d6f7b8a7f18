"""One simulated Modbus slave: its tables, and the faults it injects.

A ``SimSlave`` answers request PDUs (``sim_pdu.handle_pdu``) unless a fault says
otherwise. Faults come three ways, checked in this order for each request:

1. silence: ``silence(seconds)`` (or ``silence()`` until ``resume()``), and the
   ``silent_every``/``silent_for`` schedule of its ``SimFaults``: no reply at all;
2. injected faults, for tests: ``inject(Fault.EXCEPTION, count=2, code=4)`` makes
   the next two requests fail that way, exactly;
3. chance, per request: ``SimFaults.timeout``, ``bad_crc``, ``exception``.

The transport (``sim_transport``) frames the reply and, for ``Fault.BAD_CRC``,
damages it in the way its framing can be damaged.
"""

from __future__ import annotations

import enum
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from tidegate.drivers.modbus.sim_config import SimFaults
from tidegate.drivers.modbus.sim_pdu import SlaveTables, exception_pdu, handle_pdu


class Fault(enum.StrEnum):
    TIMEOUT = "timeout"
    """No reply (the request is lost, or the slave is busy elsewhere)."""
    BAD_CRC = "bad_crc"
    """A reply that arrives damaged."""
    EXCEPTION = "exception"
    """An exception reply (code from the injection or ``SimFaults.exception_code``)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the slave does with one request: ``pdu`` None means it stays silent."""

    pdu: bytes | None
    fault: Fault | None = None


class SimSlave:
    """A slave id's tables and fault plan; ``answer`` is all a transport calls."""

    def __init__(
        self,
        slave_id: int,
        tables: SlaveTables | None = None,
        *,
        faults: SimFaults | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh: Callable[[SlaveTables], None] | None = None,
    ) -> None:
        if not 1 <= slave_id <= 247:
            raise ValueError(f"slave id {slave_id} is outside 1..247")
        self.slave_id = slave_id
        self.tables = tables if tables is not None else SlaveTables()
        self.faults = faults if faults is not None else SimFaults()
        self.refresh = refresh
        """Called before each request is served, to bring changing values up to now."""
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._started = clock()
        self._silent_until: float | None = None
        self._injected: deque[tuple[Fault, int | None]] = deque()
        self.requests = 0
        self.replies = 0
        self.faults_served: Counter[Fault] = Counter()
        """Faults this slave actually served, by kind: what a test expects the driver saw."""
        self.silenced = 0
        """Requests that went unanswered because the slave was silent."""

    # --- the test API -------------------------------------------------------------------

    def inject(self, fault: Fault, count: int = 1, *, code: int | None = None) -> None:
        """Make the next ``count`` requests fail with ``fault`` (``code``: its exception code)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self._injected.extend([(fault, code)] * count)

    def silence(self, seconds: float | None = None) -> None:
        """Stop answering, for ``seconds`` or until ``resume()``."""
        self._silent_until = float("inf") if seconds is None else self._clock() + seconds

    def resume(self) -> None:
        """Answer again (ends ``silence`` and clears injected faults not yet served)."""
        self._silent_until = None
        self._injected.clear()

    @property
    def silent(self) -> bool:
        now = self._clock()
        if self._silent_until is not None and now < self._silent_until:
            return True
        every = self.faults.silent_every
        if every is None:
            return False
        elapsed = now - self._started
        # Speaks for `every`, then is silent for `silent_for`, and again.
        return elapsed >= every and (elapsed % (every + self.faults.silent_for)) >= every

    # --- serving ------------------------------------------------------------------------

    def _draw(self) -> tuple[Fault, int | None] | None:
        if self._injected:
            return self._injected.popleft()
        faults = self.faults
        roll = self._rng.random()
        for fault, chance in (
            (Fault.TIMEOUT, faults.timeout),
            (Fault.BAD_CRC, faults.bad_crc),
            (Fault.EXCEPTION, faults.exception),
        ):
            if roll < chance:
                return fault, None
            roll -= chance
        return None

    def answer(self, pdu: bytes) -> Reply:
        """Serve one request PDU addressed to this slave."""
        self.requests += 1
        if self.silent:
            self.silenced += 1
            return Reply(None, Fault.TIMEOUT)
        drawn = self._draw()
        if drawn is not None:
            fault, code = drawn
            self.faults_served[fault] += 1
            if fault is Fault.TIMEOUT:
                return Reply(None, fault)
            if fault is Fault.EXCEPTION:
                function = pdu[0] if pdu else 0
                self.replies += 1
                return Reply(exception_pdu(function, code or self.faults.exception_code), fault)
        else:
            fault = None
        if self.refresh is not None:
            self.refresh(self.tables)
        self.replies += 1
        return Reply(handle_pdu(self.tables, pdu), fault)

    def broadcast(self, pdu: bytes) -> None:
        """A request to slave id 0: writes are carried out, nobody replies."""
        if not self.silent:
            handle_pdu(self.tables, pdu)
