"""Checking a rule file's new text against the rest of the rule set, before it is written.

The checks of a reload (every rule valid, names unique across the set, ``from``
chains) and the one a restart adds: every uplink a rule's ``publish: {uplink: …}``
names is one the gateway has. A text that passes is one the gateway can load
at its next start too. Messages are ``FILE:LINE:COL: …``, the pushed text
named by the file's path relative to the config file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tidegate.errors import ConfigError


def label(file: Path, config_path: Path) -> str:
    """How messages name the pushed text: the file as the config names it."""
    return os.path.relpath(file.resolve(), config_path.resolve().parent)


def check_rule_text(config_path: Path, file: Path, text: str, uplinks: Sequence[str]) -> int:
    """Raise ConfigError (every problem) unless ``text`` is a valid ``file``; return
    how many rules the whole set would have."""
    from tidegate.rules.loader import load_rules_replacing  # noqa: PLC0415 - the rule engine

    rules = load_rules_replacing(config_path, file, text, label(file, config_path))
    problems = []
    for rule in rules:
        publish = rule.publish
        unknown = [n for n in (publish.uplink or []) if n not in uplinks] if publish else []
        if unknown:
            have = f"the uplinks are {', '.join(uplinks)}" if uplinks else "there are no uplinks"
            problems.append(
                f"rule {rule.name!r}: publish.uplink: no uplink named {unknown[0]!r} ({have})"
            )
    if problems:
        raise ConfigError(problems)
    return len(rules)
