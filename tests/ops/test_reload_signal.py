"""SIGHUP reloads the rules of a running gateway process; a broken file changes nothing."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support import GatewayProcess, Subscriber, wait_until, write_config
from tidegate.demo.local_broker import LocalBroker


def test_sighup_swaps_valid_rules_and_refuses_broken_ones(
    tmp_path: Path, broker: LocalBroker
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    rule_file = rules / "10-route.yaml"
    rule_file.write_text("- name: route\n  publish: {topic: 'old/{source}'}\n")
    config = write_config(
        tmp_path / "tidegate.yaml",
        f"""
gateway: {{id: hup, data_dir: {tmp_path / "data"}}}
mqtt: {{host: {broker.host}, port: {broker.port}}}
rules_dir: rules
drivers:
  - name: s
    type: sim
    signals: [{{name: n, kind: counter, rate: 100}}]
""",
    )
    sub = Subscriber(broker.host, broker.port, "#").start()
    gw = GatewayProcess(config, tmp_path / "gw.log").start()

    def count(prefix: str) -> int:
        return sum(1 for m in sub.snapshot() if m.topic.startswith(prefix))

    try:
        wait_until(lambda: count("old/") >= 20, 20, "events on the old topic")
        rule_file.write_text("- name: route\n  where: 'valeu > 1'\n  publish: {topic: 'new/x'}\n")
        gw.signal(signal.SIGHUP)
        wait_until(lambda: "old rules keep running" in gw.output(), 10, "the refusal")
        assert "10-route.yaml:2:" in gw.output()  # positioned error
        before = count("old/")
        wait_until(lambda: count("old/") >= before + 20, 10, "old rules still running")
        assert count("new/") == 0
        rule_file.write_text("- name: route\n  publish: {topic: 'new/{source}'}\n")
        gw.signal(signal.SIGHUP)
        wait_until(lambda: count("new/") >= 20, 10, "events on the new topic")
        assert "rules reloaded" in gw.output()
    finally:
        code = gw.stop()
        sub.stop()
    assert code == 0, gw.output()
