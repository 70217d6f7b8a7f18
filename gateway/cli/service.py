"""``tidegate service install|uninstall``: tidegate as a systemd service.

The installer (``tidegate.ops.service``) is imported when a command runs;
help needs only the defaults.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from tidegate.cli.options import command_group
from tidegate.ops.service_files import DEFAULT_CONFIG, DEFAULT_USER

service_app = command_group("service", "Install or remove tidegate as a systemd service.")

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
    from tidegate.ops.service import Installer, ServiceOptions  # noqa: PLC0415

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
    from tidegate.ops.service import Installer, ServiceOptions  # noqa: PLC0415

    Installer(ServiceOptions(root=root, user=user, dry_run=dry_run), typer.echo).uninstall(purge)
