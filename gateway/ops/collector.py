"""The cyclic garbage collector's pace while a gateway runs.

CPython collects its youngest generation every 700 new container objects: on a
gateway's hot path, which makes and drops tuples, lists and messages per event and
holds many of them (a window of messages in flight, a commit's events), that was a
quarter of the CPU of a backlog's drain (``./dev bench backlog_drain``, 100 events
per message: 2.3-2.7 s with the default, 1.7-2.0 s with ``YOUNG`` below, measured
alternately in one run). The events themselves form no cycles: what the collector
finds is asyncio's and the standard library's occasional cycles, which a later
collection still finds, a few MB at most later.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG = 10_000
"""New container objects between collections of the youngest generation (default 700)."""


_holders = 0
_before: tuple[int, int, int] = (700, 10, 10)


@contextlib.contextmanager
def paced_for_throughput() -> Iterator[None]:
    """Collect less often while the block runs (while any such block runs: gateways
    in one process, as in tests, may overlap); the previous pace after the last."""
    global _holders, _before  # noqa: PLW0603 - the collector is process-wide
    if _holders == 0:
        _before = gc.get_threshold()
        gc.set_threshold(YOUNG, *_before[1:])
    _holders += 1
    try:
        yield
    finally:
        _holders -= 1
        if _holders == 0:
            gc.set_threshold(*_before)
