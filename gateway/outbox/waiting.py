"""While the outbox cannot be opened for lack of disk space (``OutboxNoSpace``).

The gateway then runs without it (``tidegate.outbox.facade``): events are held in
memory, and the memory drops that bound them are counted at once. They are
kept where a full disk cannot stop it: the ledger beside the outbox, which is
preallocated and rewritten in place. The open that eventually succeeds moves
them into the outbox's counters (``tidegate.outbox.ledger.sync``). Meanwhile
``tidegate status`` shows the outbox as the ledger last described it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidegate.outbox.ledger.file import Ledger, ledger_path

if TYPE_CHECKING:
    from tidegate.outbox.store import Outbox

MEMORY = "dropped_memory"


def show_last_known(box: Outbox) -> None:
    """Fill the outbox's statistics from its ledger (what the last run left): the
    counters and the depth, so that status is not blank while the file is closed."""
    ledger = Ledger(ledger_path(box.path))
    if ledger.load() != "ok":
        return
    state = ledger.state
    box.stats.drops = dict(state.counters)
    box.stats.depth = state.depth
    pending = state.memory_noted - state.memory_applied
    if pending > 0:
        box.stats.pending_drops[MEMORY] = pending


class DropsWhileClosed:
    """Memory drops of an outbox that may not be open. Used on the outbox's thread
    only, like the outbox itself: whether it is open is decided there."""

    def __init__(self, box: Outbox) -> None:
        self.box = box
        self.unkept = 0
        """Drops the ledger could not take (missing, damaged, unwritable)."""

    def note(self, n: int) -> None:
        box = self.box
        if box._db is not None:
            box.note_memory_drops(n)
            return
        box.stats.pending_drops[MEMORY] = box.stats.pending_drops.get(MEMORY, 0) + n
        if not _note_in_ledger(box, n):
            self.unkept += n

    def opened(self) -> None:
        """The open applied the drops the ledger kept; the others are noted now."""
        box = self.box
        n, self.unkept = self.unkept, 0
        box.note_memory_drops(n)
        pending = box._memory_noted - box._memory_applied
        if pending > 0:
            box.stats.pending_drops[MEMORY] = pending
        else:
            box.stats.pending_drops.pop(MEMORY, None)


def _note_in_ledger(box: Outbox, n: int) -> bool:
    """Count ``n`` memory drops in the ledger of an outbox that is not open, in place
    and durably (a stop, or a power cut, must not lose the count). False if the ledger
    cannot take them."""
    ledger = Ledger(ledger_path(box.path))
    try:
        if ledger.load() != "ok":
            return False
        ledger.open()
        ledger.state.memory_noted += n
        ledger.write(durable=True)
    except OSError:
        return False
    finally:
        ledger.close()
    return True
