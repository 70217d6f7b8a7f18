"""Administrative access to an outbox file: what ``tidegate buffer`` reads.

Works on a stopped gateway's file and on the file of a running gateway, through
SQLite's own concurrency (``tidegate.outbox.admin.access``): readers (stats, peek,
export) read one consistent snapshot of the read-only file and never block the
gateway's commits; writers (replay: ``tidegate.outbox.admin.replay``, purge:
``tidegate.outbox.admin.purge``) work in short write transactions that tell the
gateway to recount.

The parts: opening and transactions (``access``), ``buffer stats`` (``stats``),
``buffer peek``/``export`` (``listing``); this module names them all.
"""

from __future__ import annotations

from tidegate.outbox.admin.access import (
    BUSY_TIMEOUT_MS,
    COUNTER_SQL,
    READABLE_VERSIONS,
    bump,
    open_for_reading,
    open_for_writing,
    scalar,
    snapshot,
    write_transaction,
)
from tidegate.outbox.admin.listing import DeadLetter, Entry, dead_letters, entries
from tidegate.outbox.admin.stats import (
    BufferStats,
    ClassStats,
    ReasonCount,
    SourceStats,
    read_stats,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "COUNTER_SQL",
    "READABLE_VERSIONS",
    "BufferStats",
    "ClassStats",
    "DeadLetter",
    "Entry",
    "ReasonCount",
    "SourceStats",
    "bump",
    "dead_letters",
    "entries",
    "open_for_reading",
    "open_for_writing",
    "read_stats",
    "scalar",
    "snapshot",
    "write_transaction",
]
