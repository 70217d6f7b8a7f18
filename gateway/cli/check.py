"""``tidegate check [FILE]``: validate a config file without starting anything.

It imports the config loader and the schemas, nothing of the runtime (no
pipeline, no outbox, no MQTT client): editors and scripts run it often. Its
plain forms run without the typer app (``tidegate.cli.fast``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tidegate.cli.options import CONFIG_HELP
from tidegate.cli.reports import check_report


def check(
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE", help="The config file (or give it with -c).", show_default=False
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help=CONFIG_HELP, show_default=False)
    ] = None,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the config's JSON Schema and exit.")
    ] = False,
) -> None:
    """Validate a config file without starting anything."""
    if schema:
        from tidegate.config.loader import json_schema  # noqa: PLC0415 - the heavy part

        typer.echo(json.dumps(json_schema(), indent=2))
        return
    typer.echo(check_report(file, config))
