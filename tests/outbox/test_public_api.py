"""The outbox's public API (``tidegate.outbox``): what the pipeline and the publisher
use, on a real SQLite file, and what importing it costs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tidegate.outbox
from tidegate.event import new_event
from tidegate.outbox import AsyncOutbox, DeadInput, OutboxFull, OutboxLimits
from tidegate.outgoing import Outgoing


def item(value: float) -> Outgoing:
    return Outgoing(new_event("s", "x", value), "t", 1, False)


def test_the_facade_alone_commits_hands_out_acks_corrects_and_purges(tmp_path: Path) -> None:
    async def scenario() -> None:
        outbox = AsyncOutbox.create(tmp_path / "o.db", "gw", "fsync", OutboxLimits(max_age=3600))
        await outbox.open()
        try:
            assert await outbox.put([item(1), item(2), item(3)]) == 3
            await outbox.dead_letter_input([DeadInput(time.time(), "input", "bad", "s", b"\0")])
            rows = await outbox.take(10)
            assert [json.loads(r.payload)["value"] for r in rows] == [1, 2, 3]
            assert await outbox.ack([rows[0].id]) == 1
            assert await outbox.correct_clock(5.0) == 2
            shifted = [json.loads(r.payload) for r in await outbox.take(10)]
            assert [d["time_corrected"] for d in shifted] == [True, True]
            assert await outbox.purge_expired(time.time() + 2 * 3600) == 2
            stats = outbox.stats
            assert (stats.depth, stats.acked, stats.dead_letters) == (0, 1, 1)
            assert stats.drops["dropped_expired"] == 2
            assert stats.lost_in_recovery == 0
        finally:
            await outbox.close()

    asyncio.run(scenario())


def test_a_full_outbox_that_blocks_refuses_through_the_facade(tmp_path: Path) -> None:
    async def scenario() -> None:
        limits = OutboxLimits(max_bytes=2000, when_full="block")
        outbox = AsyncOutbox.create(tmp_path / "o.db", "gw", limits=limits)
        await outbox.open()
        try:
            with pytest.raises(OutboxFull):
                await outbox.put([item(i) for i in range(100)])
            assert outbox.stats.depth == 0
        finally:
            await outbox.close()

    asyncio.run(scenario())


def test_every_public_name_resolves_and_the_store_is_not_one_of_them() -> None:
    namespace: dict[str, object] = {}
    exec("from tidegate.outbox import *", namespace)  # noqa: S102 - a constant statement
    assert set(namespace) - {"__builtins__"} == set(tidegate.outbox.__all__)
    assert not hasattr(tidegate.outbox, "Outbox")  # the pipeline uses the facade only


def loaded_after(statement: str) -> set[str]:
    """Which of the heavy modules a fresh interpreter has loaded after ``statement``."""
    heavy = ["asyncio", "sqlite3", "sqlite_utils", "tidegate.outbox.store"]
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_importing_the_api_and_its_config_types_loads_neither_sqlite_nor_asyncio() -> None:
    assert loaded_after("import tidegate.outbox") == set()
    assert loaded_after("from tidegate.outbox.limits import OutboxLimits, WhenFull") == set()
    # Only the buffer commands load sqlite-utils; the gateway's outbox never does.
    facade = loaded_after("from tidegate.outbox import AsyncOutbox")
    assert facade == {"asyncio", "sqlite3", "tidegate.outbox.store"}
