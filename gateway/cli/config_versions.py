"""``tidegate config history|rollback|push``: the versions of the remotely updated rule
file, and of the whole config file.

``history`` reads ``<outbox folder>/rules-history/`` and needs no running
gateway. ``rollback`` and ``push`` go through the running gateway's control
socket (validated, applied, then confirmed by its health or rolled back; see
``tidegate.remote.update``); ``rollback`` with no gateway running validates
the version and writes it for the next start. ``push --whole`` and
``rollback`` of a config version restart the gateway on it
(``tidegate.remote.whole_config``); ``--wait`` reads the end from the history.
The work is in ``tidegate.remote.offline`` and ``offline_config``, imported
when a command runs.

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
    "config",
    "Remote updates: the kept versions, roll back, push a rule file or a whole config.",
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
    """Remote updates: the kept versions, roll back, push a rule file or a whole config."""


@config_app.command("history")
def history(
    json_output: Annotated[bool, typer.Option("--json", help="The records as JSON.")] = False,
    config: ControlConfigOption = None,
) -> None:
    """List the kept versions of the rule file and the config (the current ones marked *)."""
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
            help="The version to restore (a config version restarts the gateway); default: "
            "the rules' confirmed one before the current one.",
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
    whole = chosen.kind == "config"
    op = "config_rollback" if whole else "rules_rollback"
    request = {"op": op, "version": chosen.version, "wait": wait}
    try:
        if whole:
            from tidegate.remote import offline_config  # noqa: PLC0415

            wait_in = target if wait else None
            offline_config.send_config(client, request, typer.echo, _warn, wait_in=wait_in)
        else:
            offline.send_update(client, request, typer.echo, _warn)
    except GatewayNotRunning:
        if whole:
            from tidegate.remote import offline_config  # noqa: PLC0415

            added = offline_config.rollback_config_offline(target, chosen)
        else:
            added = offline.rollback_offline(target, chosen)
        typer.echo(
            f"no gateway is running: version {chosen.version} restored as version "
            f"{added.version}; the gateway loads it at its next start"
        )


@config_app.command("push")
def push(
    rules: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="The rule file to send (a YAML list); with --whole, a config."
        ),
    ],
    whole: Annotated[
        bool,
        typer.Option(
            "--whole",
            help="FILE is a whole config file: applied with a restart, confirmed by health at "
            "that start or rolled back (needs `remote_rules: {whole_config: true}`).",
        ),
    ] = False,
    wait: WaitOption = False,
    socket: SocketOption = None,
    config: ControlConfigOption = None,
) -> None:
    """Send a rule file (or, with --whole, a config) to the running gateway as a remote
    update would."""
    from tidegate.cli.reports import control_client  # noqa: PLC0415
    from tidegate.remote import offline  # noqa: PLC0415

    try:
        text = rules.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise offline.RemoteUsageError(f"cannot read {rules}: {exc}") from None
    op = "config_update" if whole else "rules_update"
    request = {"op": op, "text": text, "origin": "cli", "wait": wait}
    offline.request_line_fits(request)
    client = control_client(socket, config, RULES_TIMEOUT, "config push")
    if not whole:
        offline.send_update(client, request, typer.echo, _warn)
        return
    from tidegate.config.paths import resolve_config_path  # noqa: PLC0415
    from tidegate.remote import offline_config  # noqa: PLC0415

    wait_in = offline.load_target(resolve_config_path(config)) if wait else None
    offline_config.send_config(client, request, typer.echo, _warn, wait_in=wait_in)
