"""Rows this run committed and has not handed out yet, kept in memory so ``take``
does not read back what ``put`` just wrote (issue 12: profiles showed reading
rows back at ~17 % of the gateway's CPU at full speed).

A cache, never the truth: the file is. Per priority class, ``after[c]`` is an
id such that every stored row of class ``c`` above it is in ``rows[c]``, in id
order, and nothing else is. Hence:

- ``take`` serves a class from memory only when the publisher's cursor stands at
  ``after[c]`` (it has been handed everything up to there); else it reads the
  file, as after a reconnect (the cursors go back to 0) or at start.
- Whatever is handed out, from memory or from the file, raises ``after[c]`` past
  it: a row above ``after`` was never handed out, so a reconnect that must send
  unacknowledged rows again reads them from the file.
- Every removal other than an acknowledgement (a bound's drop, an expiry, a
  dead letter, a change by ``tidegate buffer``), and a clock correction (it
  rewrites payloads), calls ``forget``: nothing is in memory and ``after`` is the
  highest id used, which keeps both statements true.
- It holds at most ``max_bytes``; a commit that would go over it makes it
  ``forget`` instead (a backlog is read from the file, as before).
- When ``take`` reads a class to its end in the file, nothing stored lies
  between the cursor and ``after``: ``after`` comes down to the cursor, and
  memory serves that class again.
- The publisher moves its cursor only past the rows it packed; what did not fit
  in the window comes back at the next ``take``. The rows of the last ``take``
  of each class (``recent``: all stored rows between the cursor then and
  ``after``) serve that again, while nothing was forgotten since and the cursor
  did not go back past it (a reconnect reads the file). An acknowledgement
  takes its rows out of ``recent`` (they are, or soon will be, gone from the file).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidegate.outbox.delivery import Row

ROW_COST = 160
"""Bytes of memory a kept row costs beyond its payload (the tuple, its strings' references)."""

MAX_BYTES = 2 << 20
"""Memory kept at most: a commit or two at full speed (a 5,000-event commit is ~1.7 MB)."""


class FreshRows:
    """Committed rows not yet handed out, per priority class (``tidegate.outbox.fresh``)."""

    def __init__(self, classes: int, max_bytes: int = MAX_BYTES) -> None:
        self.rows: list[deque[Row]] = [deque() for _ in range(classes)]
        self.after = [0] * classes
        self.bytes = 0
        self.max_bytes = max_bytes
        self.recent: list[list[Row]] = [[] for _ in range(classes)]
        """Per class, the rows the last ``take`` handed out, ending at ``after``."""
        self.recent_from = [0] * classes
        """Per class, the cursor of that ``take``."""

    def forget(self, top_id: int) -> None:
        """Keep nothing; ``top_id`` is the highest row id used so far."""
        for rows in self.rows:
            rows.clear()
        for recent in self.recent:
            recent.clear()
        self.after = [max(a, top_id) for a in self.after]
        self.bytes = 0

    def fits(self, rows: int, size: int) -> bool:
        """Whether ``rows`` rows of ``size`` bytes in all (payloads and the outbox's own
        per-row overhead: a little over) would still fit."""
        return self.bytes + size + rows * ROW_COST <= self.max_bytes

    def add(self, rows: Sequence[Row], top_id: int) -> None:
        """A commit stored ``rows`` (ids up to ``top_id``): keep them, if they fit."""
        size = sum(len(r.payload) for r in rows)
        if not self.fits(len(rows), size):
            self.forget(top_id)
            return
        for row in rows:
            self.rows[row.priority].append(row)
        self.bytes += size + len(rows) * ROW_COST

    def serves(self, priority: int, cursor: int) -> bool:
        """Whether memory holds every stored row of the class after ``cursor``: all
        of them are above ``after``, or the last take's rows cover the rest."""
        after = self.after[priority]
        if cursor >= after:
            return True
        recent = self.recent[priority]
        return bool(recent) and self.recent_from[priority] <= cursor and recent[-1].id == after

    def pop(self, priority: int, cursor: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows after ``cursor`` (only when ``serves``), handed out."""
        recent = self.recent[priority]
        start = bisect.bisect_right(recent, cursor, key=_row_id)
        out = recent[start : start + limit]
        rows = self.rows[priority]
        freed = 0
        while rows and len(out) < limit:
            row = rows.popleft()
            freed += len(row.payload) + ROW_COST
            if row.id > cursor:
                out.append(row)
        self.bytes -= freed
        self.took(priority, cursor, out)
        return out

    def delivered(self, runs: Sequence[tuple[int, int]]) -> None:
        """The broker has the rows of these sorted, disjoint id runs: never hand them out
        again, not even after a reconnect sends the cursors back to where ``recent`` began."""
        if not runs:
            return
        low, high = runs[0][0], runs[-1][1]
        for priority, had in enumerate(self.recent):
            if had and low <= had[-1].id and high >= had[0].id:
                # Cut out by slices (the list is the one take returned: never changed in
                # place); a filter over every kept row per ack was quadratic in a large take.
                kept = had
                for first, last in reversed(runs):
                    start = bisect.bisect_left(kept, first, key=_row_id)
                    end = bisect.bisect_right(kept, last, lo=start, key=_row_id)
                    if start < end:
                        kept = kept[:start] + kept[end:]
                self.recent[priority] = kept

    def took(self, priority: int, cursor: int, rows: list[Row]) -> None:
        """``take`` handed out ``rows`` of the class after ``cursor`` (all the stored
        rows between them), from memory or from the file."""
        self.recent[priority] = rows
        self.recent_from[priority] = cursor
        if rows and rows[-1].id > self.after[priority]:
            self.after[priority] = rows[-1].id

    def caught_up(self, priority: int, last_id: int) -> None:
        """``take`` found no stored row of the class after ``last_id`` that memory lacks:
        the file holds nothing between it and ``after`` (so a class that ``forget`` left
        behind, or that has no rows at all, is served from memory again)."""
        self.after[priority] = last_id

    def handed_out(self, priority: int, last_id: int) -> None:
        """``take`` read rows up to ``last_id`` of the class from the file."""
        if last_id <= self.after[priority]:
            return
        self.after[priority] = last_id
        rows = self.rows[priority]
        freed = 0
        while rows and rows[0].id <= last_id:
            freed += len(rows.popleft().payload) + ROW_COST
        self.bytes -= freed


def _row_id(row: Row) -> int:
    return row.id



class NoFreshRows(FreshRows):
    """Memory that serves nothing: for an outbox read by several uplinks, each from its
    own position, where one reader's acknowledgement must not take rows out of what
    another is served (every take reads the file, the truth)."""

    def __init__(self, classes: int) -> None:
        super().__init__(classes, max_bytes=0)

    def serves(self, priority: int, cursor: int) -> bool:
        return False

    def took(self, priority: int, cursor: int, rows: list[Row]) -> None:
        return None
