"""A Modbus slave that stops answering, through a real ``tidegate run``: it goes stale
in ``tidegate status`` while the other slave on the bus keeps being polled, and an
``absence`` rule on its readings fires — its readings are missing, not invented.

The bus is the driver's simulated one (``port: sim``): our own Modbus slave on a
pseudo-terminal, polled by the real driver code; the heat pump answers for two
seconds, then falls silent for longer than the test lasts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.ops.test_control_cli import wait_for_socket
from tests.support import GatewayProcess, tidegate, wait_until, write_config


def meters_driver(config: Path) -> dict[str, Any]:
    doc = json.loads(tidegate("status", "--json", "-c", str(config)).stdout)
    (driver,) = [d for d in doc["drivers"] if d["name"] == "meters"]
    assert isinstance(driver, dict)
    return driver


def stored(config: Path) -> list[dict[str, Any]]:
    peek = tidegate("buffer", "peek", "-c", str(config), "--jsonl", "-n", "100000")
    return [json.loads(line)["payload"] for line in peek.stdout.splitlines()]


def test_a_silent_slave_goes_stale_and_its_absence_rule_fires(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "tidegate.yaml",
        f"""
gateway: {{id: stale, data_dir: {tmp_path / "data"}}}
control: {{socket: {tmp_path / "control.sock"}}}
drivers:
  - name: meters
    type: modbus
    port: sim
    timeout: 100ms
    retries: 0
    interval: 200ms
    devices:
      - name: mains
        slave: 1
        registers: [{{name: power, table: input, address: 0x0C, type: f32, unit: W}}]
      - name: heat-pump
        slave: 2
        registers: [{{name: power, table: input, address: 0x0C, type: f32, unit: W}}]
    sim:
      device_faults:
        heat-pump: {{silent_every: 2s, silent_for: 1h}}
rules:
  - name: heat-pump-silent
    match: {{source: meters, name: heat-pump.power}}
    absence: {{after: 1s}}
""",
    )
    gateway = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        wait_for_socket(gateway, tmp_path / "control.sock")
        wait_until(
            lambda: meters_driver(config)["devices"].get("heat-pump", {}).get("stale") is True,
            60, "the heat pump stale in status --json", poll=0.1,
        )
        driver = meters_driver(config)
        assert driver["state"] == "running"
        assert driver["counters"]["timeout"] >= 1
        assert driver["devices"]["heat-pump"]["last_error"]
        assert driver["devices"]["mains"]["stale"] is False

        text = tidegate("status", "-c", str(config)).stdout
        assert any(
            line.startswith("  meters heat-pump: STALE (last answer ") for line in text.splitlines()
        ), text

        def absences() -> list[dict[str, Any]]:
            return [e for e in stored(config) if e["name"] == "heat-pump.power_absence"]

        wait_until(lambda: bool(absences()), 60, "the absence event in the outbox", poll=0.2)
        (absence, *_) = absences()
        assert absence["source"] == "meters"
        # The silent slave's readings stopped; the other slave's go on.
        mains_before = sum(e["name"] == "mains.power" for e in stored(config))
        wait_until(
            lambda: sum(e["name"] == "mains.power" for e in stored(config)) > mains_before,
            60, "more readings from the slave that answers", poll=0.2,
        )
        last_pump = max(e["time"] for e in stored(config) if e["name"] == "heat-pump.power")
        assert last_pump < absence["time"]
    finally:
        assert gateway.stop() == 0, gateway.output()
