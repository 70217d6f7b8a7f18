"""A file is validated against the schemas of what it uses: the driver kinds its
``drivers:`` names, the rule schema only when it has rules. The messages must not
depend on that: each one is what validating against every kind gives."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tidegate.config.loader import (
    config_model,
    load_config_text,
    translate_validation_error,
    used_driver_kinds,
)
from tidegate.config.yaml_source import load_yaml_text

SIM = "  - name: gh\n    type: sim\n    signals: [{name: t, kind: sine, rate: 1}]\n"
SERIAL = "  - name: ws\n    type: serial\n    port: sim\n    framing: {type: line}\n"
GPIO = "  - name: door\n    type: gpio\n    backend: sim\n    line: 17\n    mode: edge\n"

BROKEN = {
    "sim_signal_key": "drivers:\n" + SIM.replace("rate: 1", "rat: 1"),
    "sim_missing_signals": "drivers:\n  - name: gh\n    type: sim\n",
    "serial_key": "drivers:\n" + SERIAL + "    baudrat: 9600\n",
    "serial_framing_kind": "drivers:\n" + SERIAL.replace("type: line", "type: lien"),
    "gpio_mode": "drivers:\n" + GPIO.replace("mode: edge", "mode: egde"),
    "gpio_key_of_another_mode": "drivers:\n" + GPIO + "    per_pulse: 0.001\n",
    "two_kinds": "drivers:\n" + SIM.replace("rate: 1", "rate: -1") + SERIAL + "    bogus: 1\n",
    "mqtt_driver": "drivers:\n  - name: m\n    type: mqtt\n    host: h\n    subscribe: 3\n",
    "name_and_kind": "drivers:\n  - name: 'a/b'\n" + GPIO.split("\n", 1)[1],
}


def messages(text: str, model: type[Any]) -> list[str]:
    data, smap = load_yaml_text(text, "broken.yaml")
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return sorted(translate_validation_error(caught.value, model, data, smap).messages)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_kinds_a_file_uses_give_the_messages_every_kind_gives(name: str) -> None:
    text = BROKEN[name]
    kinds = used_driver_kinds(yaml.safe_load(text))
    assert kinds is not None  # every item names a known kind: the small model is used
    used = messages(text, config_model(kinds, False))
    assert used == messages(text, config_model(None, False))
    assert all(line.startswith("broken.yaml:") for line in used), used


def test_a_file_with_an_unknown_or_missing_type_is_checked_against_every_kind() -> None:
    assert used_driver_kinds({"drivers": [{"name": "a", "type": "serail"}]}) is None
    assert used_driver_kinds({"drivers": [{"name": "a"}]}) is None
    assert used_driver_kinds({"drivers": ["sim"]}) is None
    assert used_driver_kinds({"drivers": []}) is None
    mixed = {"drivers": [{"type": "sim"}, {"type": "gpio"}, {"type": "sim"}]}
    assert used_driver_kinds(mixed) == ("gpio", "sim")


def test_a_file_without_rules_loads_with_no_rules() -> None:
    config = load_config_text("drivers:\n" + SIM)
    assert config.rules == []
    assert "rules" not in config.model_fields_set


def test_checking_builtin_kinds_reads_no_entry_points_and_no_pydantic_plugins() -> None:
    script = textwrap.dedent(
        """
        import json, os
        from tidegate import driver_kinds
        from tidegate.config.loader import load_config_text
        load_config_text("drivers:\\n" + os.environ["SIM"])
        print(json.dumps({
            "entry_points_read": driver_kinds._plugin_kinds.cache_info().currsize,
            "pydantic_plugins": os.environ.get("PYDANTIC_DISABLE_PLUGINS"),
        }))
        """
    )
    env = {"SIM": SIM, "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(done.stdout) == {"entry_points_read": 0, "pydantic_plugins": "__all__"}
