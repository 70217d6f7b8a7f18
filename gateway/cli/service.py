"""CLI commands for the service side: `service install|uninstall`, and
`status`, `tail`, `reload`, which talk to a running gateway over its control socket.

``register(app)`` adds them to the main typer app. Errors are ``TidegateError``
subclasses, which the CLI's ``main()`` turns into one line and an exit code;
"no gateway is running" is one of them (exit 1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import orjson
import typer

from tidegate.config.loader import CONFIG_ENV, DEFAULT_CONFIG_PATH
from tidegate.ops.control import ControlClient, ControlError, locate_socket
from tidegate.ops.service import DEFAULT_CONFIG, DEFAULT_USER, Installer, ServiceOptions
from tidegate.ops.status import render_status

service_app = typer.Typer(
    name="service",
    help="Install or remove tidegate as a systemd service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SocketOption = Annotated[
    Path | None,
    typer.Option(
        "--socket",
        help="The gateway's control socket. Default: `control.socket` from the config, else "
        "/run/tidegate/control.sock (or $XDG_RUNTIME_DIR/tidegate/control.sock).",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file that names the socket. Default: $TIDEGATE_CONFIG, else "
        "/etc/tidegate/tidegate.yaml.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

RELOAD_TIMEOUT = 120.0
"""Compiling a large rule set on a Pi Zero can take a while."""


def _client(socket: Path | None, config: Path | None, timeout: float = 10.0) -> ControlClient:
    if config is None:
        env = os.environ.get(CONFIG_ENV)
        config = Path(env) if env else DEFAULT_CONFIG_PATH
    return ControlClient(locate_socket(socket, config), timeout)


# -- status / tail / reload ----------------------------------------------------------------------


def status(
    json_output: JsonOption = False, socket: SocketOption = None, config: ConfigOption = None
) -> None:
    """Show the running gateway's drivers, rules, outbox, broker and rates."""
    doc = _client(socket, config).status()
    if json_output:
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(render_status(doc))


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def event_line(event: dict[str, Any]) -> str:
    """``time source/name = value unit [tags] → topic``, one readable line."""
    text = f"{event['time']} {event['source']}/{event['name']} = {_value_text(event['value'])}"
    if event.get("unit"):
        text += f" {event['unit']}"
    if event.get("tags"):
        text += " [" + ", ".join(f"{k}={v}" for k, v in event["tags"].items()) + "]"
    return f"{text} → {event['topic']}"


def tail(
    *,
    source: Annotated[str, typer.Option("--source", help="Only sources matching this glob.")] = "*",
    name: Annotated[str, typer.Option("--name", help="Only event names matching this glob.")] = "*",
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    count: Annotated[
        int | None, typer.Option("--count", "-n", min=1, help="Stop after this many events.")
    ] = None,
    socket: SocketOption = None,
    config: ConfigOption = None,
) -> None:
    """Follow the live event stream (after the rules), until Ctrl-C."""
    shown = 0
    try:
        for line in _client(socket, config).tail(source, name):
            if "event" in line:
                event = line["event"]
                typer.echo(orjson.dumps(event).decode() if json_output else event_line(event))
                shown += 1
                if count is not None and shown >= count:
                    return
            elif "dropped" in line:
                typer.echo(f"tidegate: {line['dropped']} events skipped: read too slowly", err=True)
            elif "end" in line:
                typer.echo(f"tidegate: stream ended: {line['end']}", err=True)
                return
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # `tidegate tail | head`: the reader is done, so are we
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    raise ControlError("the gateway closed the stream")


def reload(socket: SocketOption = None, config: ConfigOption = None) -> None:
    """Re-read the configuration's rules and apply them without a restart."""
    outcome = _client(socket, config, RELOAD_TIMEOUT).reload()
    for detail in outcome.details:
        typer.echo(detail, err=not outcome.ok)
    if not outcome.ok:
        raise ControlError(f"reload refused: {outcome.summary}")
    typer.echo(f"reloaded: {outcome.summary}")


# -- service install / uninstall -------------------------------------------------------------------

RootOption = Annotated[
    Path,
    typer.Option("--root", help="Install into this directory tree instead of / (image builds)."),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Say what would be done; do nothing.")
]


@service_app.command("install")
def install(
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="Config the service runs (an example is written if missing)."
        ),
    ] = Path(DEFAULT_CONFIG),
    user: Annotated[
        str, typer.Option("--user", help="System user the service runs as.")
    ] = DEFAULT_USER,
    root: RootOption = Path("/"),
    dry_run: DryRunOption = False,
) -> None:
    """Install the unit, create the user and directories, enable and start the service."""
    options = ServiceOptions(root=root, user=user, config=PurePosixPath(config), dry_run=dry_run)
    Installer(options, typer.echo).install()


@service_app.command("uninstall")
def uninstall(
    user: Annotated[str, typer.Option("--user", help="The service's user.")] = DEFAULT_USER,
    root: RootOption = Path("/"),
    dry_run: DryRunOption = False,
    purge: Annotated[
        bool,
        typer.Option("--purge", help="Also delete the config and the outbox (undelivered events)."),
    ] = False,
) -> None:
    """Stop and remove the service; the config and the outbox stay unless --purge."""
    Installer(ServiceOptions(root=root, user=user, dry_run=dry_run), typer.echo).uninstall(purge)


def register(app: typer.Typer) -> None:
    """Add `service install|uninstall`, `status`, `tail` and `reload` to the CLI."""
    app.add_typer(service_app, name="service")
    app.command()(status)
    app.command()(tail)
    app.command()(reload)
