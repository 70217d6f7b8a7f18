"""``tidegate run``: the gateway in the foreground (what the systemd service runs)."""

from __future__ import annotations

from tidegate.cli.launch import run_gateway
from tidegate.cli.options import ConfigOption


def run(config: ConfigOption = None) -> None:
    """Run the gateway in the foreground (what the systemd service runs)."""
    run_gateway(config)
