"""The last values of one signal in a history file, for `tidegate top`'s sparklines
after a restart: the standard library only (top stays light), read-only, and nothing
at all when the file or the signal is not there."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def recent_values(path: Path, source: str, name: str, count: int) -> list[float]:
    """Up to ``count`` of the signal's latest raw values, oldest first; [] on any trouble."""
    if not path.is_file():
        return []
    try:
        db = sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True, timeout=0.5)
        try:
            rows = db.execute(
                "SELECT v FROM samples WHERE signal = (SELECT id FROM signals WHERE source = ? "
                "AND name = ?) ORDER BY t DESC LIMIT ?",
                (source, name, count),
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []  # a file being written, or of another version: no history, no error
    return [float(v) for (v,) in reversed(rows)]
