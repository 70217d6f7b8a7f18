"""``tidegate config history|rollback|push``: the versions of the remotely updated rule file.

``history`` reads ``<outbox folder>/rules-history/`` and needs no running
gateway. ``rollback`` and ``push`` go through the running gateway's control
socket (validated, applied, then confirmed by its health or rolled back; see
``tidegate.remote.update``); ``rollback`` with no gateway running validates
the version and writes it for the next start. The work is in
``tidegate.remote.offline``, imported when a command runs.

Exit codes: 0; 1 when an update was refused for another reason than its
rules, or rolled back (``--wait``), or no gateway runs (``push``); 2 for
invalid rules, a version that does not exist, a config without
``remote_rules:``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tidegate.cli.options import ControlConfigOption, SocketOption, command_group

config_app = command_group(
    "config", "Remote rules updates: the kept versions, roll back, push a rule file."
)

RULES_TIMEOUT = 120.0
"""Validating and reloading a large rule set on a Pi Zero can take a while."""

WaitOption = Annotated[
    bool,
    typer.Option("--wait", help="Wait until the update is confirmed or rolled back."),
]


def _warn(line: str) -> None:
    typer.echo(line, err=True)


@config_app.callback()
def config_group() -> None:
    """Remote rules updates: the kept versions, roll back, push a rule file."""


@config_app.command("history")
def history(
    json_output: Annotated[bool, typer.Option("--json", help="The records as JSON.")] = False,
    config: ControlConfigOption = None,
) -> None:
    """List the kept versions of the remote rule file (the current one marked *)."""
    from tidegate.config.paths import resolve_config_path  # noqa: PLC0415
    from tidegate.remote import offline  # noqa: PLC0415 - the config loader

    target = offline.load_target(resolve_config_path(config))
    if json_output:
        typer.echo(offline.json_history(target))
        return
    for line in offline.history_table(target):
        typer.echo(line)


@config_app.command("rollback")
def rollback(
    version: Annotated[
        int | None,
        typer.Argument(
            metavar="VERSION",
            help="The version to restore; default: the confirmed one before the current one.",
            show_default=False,
        ),
    ] = None,
    wait: WaitOption = False,
    socket: SocketOption = None,
    config: ControlConfigOption = None,
) -> None:
    """Restore a kept version (through the running gateway, else for its next start)."""
    from tidegate.cli.reports import control_client  # noqa: PLC0415
    from tidegate.config.paths import resolve_config_path  # noqa: PLC0415
    from tidegate.ops.control_client import GatewayNotRunning  # noqa: PLC0415
    from tidegate.remote import offline  # noqa: PLC0415

    target = offline.load_target(resolve_config_path(config))
    chosen = offline.rollback_target(target.history, version)
    client = control_client(socket, config, RULES_TIMEOUT, "config rollback")
    request = {"op": "rules_rollback", "version": chosen.version, "wait": wait}
    try:
        offline.send_update(client, request, typer.echo, _warn)
    except GatewayNotRunning:
        added = offline.rollback_offline(target, chosen)
        typer.echo(
            f"no gateway is running: version {chosen.version} restored as version "
            f"{added.version}; the gateway loads it at its next start"
        )


@config_app.command("push")
def push(
    rules: Annotated[
        Path, typer.Argument(metavar="RULES.yaml", help="The rule file to send (a YAML list).")
    ],
    wait: WaitOption = False,
    socket: SocketOption = None,
    config: ControlConfigOption = None,
) -> None:
    """Send a rule file to the running gateway as a remote update would."""
    from tidegate.cli.reports import control_client  # noqa: PLC0415
    from tidegate.remote import offline  # noqa: PLC0415

    try:
        text = rules.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise offline.RemoteUsageError(f"cannot read {rules}: {exc}") from None
    request = {"op": "rules_update", "text": text, "origin": "cli", "wait": wait}
    offline.request_line_fits(request)
    client = control_client(socket, config, RULES_TIMEOUT, "config push")
    offline.send_update(client, request, typer.echo, _warn)
