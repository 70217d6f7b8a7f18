"""The README is part of the product: its reference and examples must be true."""

from __future__ import annotations

import re
from pathlib import Path

from tidegate.config.docgen import BEGIN, END, readme_block
from tidegate.config.loader import load_config_text

README = Path(__file__).resolve().parents[2] / "README.md"


def test_config_reference_matches_the_code() -> None:
    text = README.read_text()
    block = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert block == readme_block(), "README reference is stale: run ./dev docs"


def test_quick_start_is_exactly_two_commands() -> None:
    text = README.read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == ["./dev simulate", "./dev test"]


SIM_DRIVER = """
drivers:
  - {name: s, type: sim, signals: [{name: temperature, kind: sine, rate: 1}]}
"""


def test_yaml_configuration_examples_validate() -> None:
    text = README.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    examples = [
        b if "drivers:" in b else b + SIM_DRIVER for b in blocks if "rules:" in b or "drivers:" in b
    ]
    assert len(examples) >= 2
    for example in examples:
        load_config_text(example, "README.md example")
