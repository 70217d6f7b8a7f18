"""``tidegate top``: the live terminal dashboard of a running gateway.

The dashboard itself is ``tidegate.top`` (rendering without curses in
``tidegate.top.render``, the curses shell in ``tidegate.top.screen``); this
module is its typer command and imports them only when it runs.
"""

from __future__ import annotations

from tidegate.cli.options import ControlConfigOption, SocketOption
from tidegate.cli.reports import control_client

TOP_TIMEOUT = 2.0
"""Seconds a status request may take: a dashboard that froze for the CLI's usual
ten would look like a hung terminal; it says the gateway is unreachable instead."""


def top(socket: SocketOption = None, config: ControlConfigOption = None) -> None:
    """Live dashboard: drivers, rules, outbox, uplinks, actions (q quits, ? shows the keys)."""
    from tidegate.top.screen import run_top  # noqa: PLC0415 - curses, only when it runs

    run_top(control_client(socket, config, TOP_TIMEOUT, "top"))
