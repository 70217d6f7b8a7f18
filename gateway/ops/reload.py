"""What a configuration reload reports (SIGHUP, ``tidegate reload``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
