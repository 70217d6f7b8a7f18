"""kill -9 at random moments under load loses no committed event (issue 5).

20 cycles of: start the real gateway (~1,000 events/s, 20 ms commits,
publishing to a real broker), kill it with SIGKILL 0.2 to 1.0 s after it connected.
The loop and its checks live in ``bench/kill_loop.py`` (which runs as many
cycles as asked); see its docstring for what is checked after each kill.
The kill moments come from a seeded RNG: set ``TIDEGATE_CRASH_SEED`` to rerun
a reported sequence.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.kill_loop import run_kill_loop
from tidegate.demo.local_broker import LocalBroker

CYCLES = 20
SEED = int(os.environ.get("TIDEGATE_CRASH_SEED", "5"))


def test_kill_9_loop_under_load_loses_no_committed_event(
    tmp_path: Path, broker: LocalBroker
) -> None:
    result = run_kill_loop(tmp_path, broker.host, broker.port, cycles=CYCLES, seed=SEED)
    report = result.describe()
    assert result.cycles == CYCLES, report
    assert not result.problems, report
    assert not result.lost, report
    # The load was real: every cycle committed and delivered events.
    assert result.committed_total >= CYCLES * 200, report
    assert result.delivered == result.committed_total, report
