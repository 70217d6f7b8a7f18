"""What a configuration reload reports (SIGHUP, ``tidegate reload``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    ok: bool
    summary: str
    """One line: what was applied, or why nothing was."""
    details: tuple[str, ...] = field(default=())
    """More lines: ``file:line:col: message`` for an invalid file, what still needs a restart."""

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "summary": self.summary, "details": list(self.details)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ReloadOutcome:
        return cls(bool(doc["ok"]), str(doc["summary"]), tuple(map(str, doc.get("details", ()))))


APPLIED = frozenset({"rules", "rules_dir"})
"""The sections a reload applies; the others take effect on a restart."""


def restart_sections(config_path: Path) -> dict[str, Any]:
    """The file's other sections as parsed: a comment or a re-indented line is no change."""
    # Imported here: the control client imports this module for ReloadOutcome alone.
    from tidegate.config.yaml_source import load_yaml_file  # noqa: PLC0415

    data, _ = load_yaml_file(config_path)
    if not isinstance(data, dict):
        return {}
    return {key: value for key, value in data.items() if key not in APPLIED}


def restart_note(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    """The line saying which changed sections still wait for a restart, if any did."""
    changed = sorted(
        key for key in before.keys() | after.keys() if before.get(key) != after.get(key)
    )
    if not changed:
        return ()
    return (
        f"not applied until a restart: the changes to {', '.join(changed)} "
        "(a reload applies rules and rules_dir)",
    )
