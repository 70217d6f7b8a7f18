"""Where the laptop demo keeps its outbox (and so its control socket) between runs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def demo_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/tidegate/simulate``, by default ``~/.local/state/tidegate/simulate``."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME")
    if not state:
        home = env.get("HOME")
        state = str((Path(home) if home else Path.home()) / ".local" / "state")
    return Path(state) / "tidegate" / "simulate"
