"""The Prometheus text exposition format (0.0.4): metric families, each with its HELP
and TYPE once, and escaped label values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    """Collects metric families; each family's HELP/TYPE is written once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterator[tuple[dict[str, str], Any]]
    ) -> None:
        rows = [(labels, value) for labels, value in samples if value is not None]
        if not rows:
            return
        self.lines += [f"# HELP tidegate_{name} {help_text}", f"# TYPE tidegate_{name} {kind}"]
        for labels, value in rows:
            text = ",".join(f'{k}="{label(v)}"' for k, v in labels.items())
            number = float(value) if isinstance(value, bool) else value
            self.lines.append(
                f"tidegate_{name}{{{text}}} {number}" if text else f"tidegate_{name} {number}"
            )

    def one(self, name: str, kind: str, help_text: str, value: Any) -> None:
        self.family(name, kind, help_text, iter([({}, value)]))
