"""The Prometheus gauges for an outbox that cannot open (issue 9 leftovers): a real
Gateway started on a real, full filesystem (tmpfs; skipped where mounting is not
permitted) waits for room holding events in memory, and the exposition says so."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.ops.test_control import SIM_CONFIG, running_gateway, until
from tests.ops.test_metrics import parse_exposition
from tests.outbox.support import fill_disk, small_disk
from tidegate.ops.metrics import prometheus_text
from tidegate.ops.status import GatewayMonitor


def test_outbox_state_gauges_follow_a_full_disk_and_its_end(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        (disk / "data").mkdir()
        filler = fill_disk(disk)

        async def body() -> tuple[dict[str, Any], dict[str, Any]]:
            config = SIM_CONFIG.format(data=disk / "data")
            async with running_gateway(tmp_path, config) as gateway:
                monitor = GatewayMonitor(gateway)
                await until(
                    lambda: gateway.outbox.waiting is not None and gateway.held_in_memory > 0,
                    30,
                    "the outbox waiting for room, events held in memory",
                )
                waiting = await monitor.status()
                filler.unlink()
                await until(lambda: gateway.outbox.waiting is None, 30, "the outbox open")
                await until(lambda: gateway.outbox.stats.accepted > 0, 30, "a commit")
                return waiting, await monitor.status()

        waiting, opened = asyncio.run(body())
    during = parse_exposition(prometheus_text(waiting))
    assert waiting["outbox"]["state"] == "waiting for disk space"
    assert during["tidegate_outbox_open"] == 0
    assert during["tidegate_outbox_waiting_for_disk_space"] == 1
    assert during["tidegate_outbox_held_in_memory"] == waiting["outbox"]["held_in_memory"] > 0
    after = parse_exposition(prometheus_text(opened))
    assert opened["outbox"]["state"] == "open"
    assert after["tidegate_outbox_open"] == 1
    assert after["tidegate_outbox_waiting_for_disk_space"] == 0
    assert after["tidegate_outbox_held_in_memory"] == opened["outbox"]["held_in_memory"]
