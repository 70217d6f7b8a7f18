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


def simulated_dir(
    config: Path, gateway_id: str | None, environ: Mapping[str, str] | None = None
) -> Path:
    """Where `tidegate simulate -c config` keeps its outbox and control socket: a folder
    below the demo's named after the config's gateway id when the file gives one (the
    default id, the host name, would be the same for every file), else after the file."""
    return demo_data_dir(environ) / (gateway_id or config.stem)


def given_gateway_id(data: object) -> str | None:
    """``gateway.id`` of a leniently read config document, when the file gives one."""
    gateway = data.get("gateway") if isinstance(data, dict) else None
    given = gateway.get("id") if isinstance(gateway, dict) else None
    return given if isinstance(given, str) and given else None
