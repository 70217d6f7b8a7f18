"""Options several commands share, declared once.

A flag is declared by its name only (``typer.Option("--json")``): help shows
``--json``, with no ``--no-json`` twin and no value placeholder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

CONFIG_HELP = "Config file. Default: $TIDEGATE_CONFIG, else /etc/tidegate/tidegate.yaml."

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help=CONFIG_HELP, show_default=False),
]
ControlConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config of the gateway to talk to. Default: $TIDEGATE_CONFIG, else "
        "/etc/tidegate/tidegate.yaml, else the demo (`tidegate simulate`).",
        show_default=False,
    ),
]
SocketOption = Annotated[
    Path | None,
    typer.Option(
        "--socket",
        help="The gateway's control socket. Default: the config's `control.socket`, else "
        "<data_dir>/control.sock.",
        show_default=False,
    ),
]



def command_group(name: str | None, help_text: str) -> typer.Typer:
    """A typer app the way every tidegate command group is made.

    Plain help, not Rich's: it shows a flag as a flag (Rich's panels print
    ``--json <bool>``), and Rich is not imported, which saves ~100 ms a command.
    """
    return typer.Typer(
        name=name,
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
