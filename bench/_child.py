"""Running a measurement in a child process of its own, so its CPU and RSS are its own."""

from __future__ import annotations

import json
import subprocess
import sys


def run_child(module: str, *args: object) -> dict[str, float]:
    """``python -m MODULE ARGS...``; its figures: the JSON object on its last line of output."""
    out = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
