"""Device time through a real ``tidegate run``: a data logger on a real pty, its
clock choices in ``tidegate status`` (JSON and text), in the Prometheus metrics,
and its own time on the events in the outbox (``tidegate buffer peek``).
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.ops.test_control_cli import wait_for_socket
from tests.ops.test_metrics import get
from tests.support import GatewayProcess, tidegate, wait_until, write_config
from tidegate.demo.local_broker import free_port


def logger_driver(config: Path) -> dict[str, Any]:
    doc = json.loads(tidegate("status", "--json", "-c", str(config)).stdout)
    (driver,) = [d for d in doc["drivers"] if d["name"] == "logger"]
    assert isinstance(driver, dict)
    return driver


def test_device_time_choices_show_in_status_and_metrics(tmp_path: Path) -> None:
    master, slave = os.openpty()  # the test's end is the device; the slave is the port
    port = free_port()
    config = write_config(
        tmp_path / "tidegate.yaml",
        f"""
gateway: {{id: dt, data_dir: {tmp_path / "data"}}}
control: {{socket: {tmp_path / "control.sock"}}}
metrics: {{prometheus: {{listen: "127.0.0.1:{port}"}}}}
drivers:
  - name: logger
    type: serial
    port: {os.ttyname(slave)}
    framing: {{type: line}}
    parse:
      format: kv
      fields: {{level: {{unit: m}}}}
      time_field: {{field: ts, format: epoch_ms, max_ahead: 2m, max_behind: 7d}}
""",
    )
    gateway = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        wait_for_socket(gateway, tmp_path / "control.sock")
        wait_until(lambda: logger_driver(config)["state"] == "running", 30, "the port open",
                   poll=0.1)
        recorded = int(time.time() * 1000) - 86_400_000  # uploaded a day late: used
        ahead = int(time.time() * 1000) + 3_600_000  # a clock an hour fast: fallback
        before = time.time()
        os.write(master, b"level=1.25,ts=%d\nlevel=1.5,ts=%d\nlevel=1.75\n" % (recorded, ahead))
        expected = {
            "device_time": 1,
            "clock_fallback": 2,
            "device_time_ahead": 1,
            "device_time_missing": 1,
        }
        wait_until(lambda: logger_driver(config)["counters"] == expected, 30,
                   "the counters in status --json", poll=0.1)
        after = time.time()  # the frames arrived between before and after

        text = tidegate("status", "-c", str(config)).stdout
        assert (
            "  logger: clock_fallback 2 · device_time 1 · device_time_ahead 1 · "
            "device_time_missing 1" in text.splitlines()
        ), text

        status, _, metrics = get("GET", port, "/metrics")
        assert status == 200
        for counter, n in expected.items():
            sample = f'tidegate_driver_counter_total{{driver="logger",counter="{counter}"}} {n}'
            assert sample in metrics.splitlines(), metrics

        # No broker: the events wait in the outbox, with the time each one got.
        peek = tidegate("buffer", "peek", "-c", str(config), "--jsonl")
        rows = map(json.loads, peek.stdout.splitlines())
        events = {row["payload"]["value"]: row["payload"] for row in rows}
        assert sorted(events) == [1.25, 1.5, 1.75], peek.stdout + peek.stderr
        sent = datetime.fromisoformat(events[1.25]["time"]).timestamp()
        assert abs(sent - recorded / 1000) < 1e-3  # the logger's own time
        for fallback in (1.5, 1.75):  # the gateway's clock at arrival, not an hour ahead
            got = datetime.fromisoformat(events[fallback]["time"]).timestamp()
            assert before <= got <= after
        # One log line per problem (ahead, missing), not one per frame.
        output = gateway.output()
        assert output.count("logger: device time is 60.0 min ahead") == 1, output
        assert output.count("logger: time field 'ts' is missing; using the gateway's clock") == 1
        assert output.count("using the gateway's clock") == 2, output
    finally:
        try:
            assert gateway.stop() == 0, gateway.output()
        finally:
            os.close(master)
            os.close(slave)
