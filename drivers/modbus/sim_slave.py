"""One simulated Modbus slave: its tables, and the faults it injects.

A ``SimSlave`` answers request PDUs (``sim_pdu.handle_pdu``) unless a fault says
otherwise. Faults come three ways, checked in this order for each request:

1. silence: ``silence(seconds)`` (or ``silence()`` until ``resume()``), and the
   ``silent_every``/``silent_for`` schedule of its ``SimFaults``: no reply at all;
2. injected faults, for tests: ``inject(Fault.EXCEPTION, count=2, code=4)`` makes
   the next two requests fail that way, exactly;
3. chance, per request: ``SimFaults.timeout``, ``bad_crc``, ``exception``.

``delay(seconds, address=...)`` makes one answer (the next, or the next to a request
at that start address) leave ``seconds`` after its request instead of the bus's
``reply_delay``: a slave that answers one request after the master's timeout.

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
    WRONG_COUNT = "wrong_count"
    """A read's answer one register (bits: one byte) short: not the answer asked for.
    Injected only."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the slave does with one request: ``pdu`` None means it stays silent."""

    pdu: bytes | None
    fault: Fault | None = None
    delay: float | None = None
    """Seconds before it leaves, instead of the bus's ``reply_delay``."""


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
        self._delays: list[tuple[float, int | None]] = []
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

    def delay(self, seconds: float, *, address: int | None = None, count: int = 1) -> None:
        """Make the next ``count`` answers (to requests that start at ``address``, if
        given) leave ``seconds`` after their request."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self._delays.extend([(seconds, address)] * count)

    def _delay_for(self, pdu: bytes) -> float | None:
        start = int.from_bytes(pdu[1:3], "big") if len(pdu) >= 3 else None
        for n, (seconds, address) in enumerate(self._delays):
            if address is None or address == start:
                del self._delays[n]
                return seconds
        return None

    def silence(self, seconds: float | None = None) -> None:
        """Stop answering, for ``seconds`` or until ``resume()``."""
        self._silent_until = float("inf") if seconds is None else self._clock() + seconds

    def resume(self) -> None:
        """Answer again (ends ``silence``; clears injected faults and delays not yet
        served)."""
        self._silent_until = None
        self._injected.clear()
        self._delays.clear()

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
                return Reply(exception_pdu(function, code or self.faults.exception_code),
                             fault, self._delay_for(pdu))
        else:
            fault = None
        if self.refresh is not None:
            self.refresh(self.tables)
        self.replies += 1
        out = handle_pdu(self.tables, pdu)
        if fault is Fault.WRONG_COUNT and out[0] in (1, 2, 3, 4) and out[1] > 1:
            short = out[1] - (1 if out[0] in (1, 2) else 2)
            out = bytes((out[0], short)) + out[2 : 2 + short]
        return Reply(out, fault, self._delay_for(pdu))

    def broadcast(self, pdu: bytes) -> None:
        """A request to slave id 0: writes are carried out, nobody replies."""
        if not self.silent:
            handle_pdu(self.tables, pdu)
