"""The ``tidegate`` typer app: every command, each from its own module.

Command modules import typer and the standard library only; what a command
needs (the config loader, the runtime, the outbox's admin code) is imported
when it runs. So help and a command that fails its arguments cost the typer
app alone, and a command pays only for itself. ``tidegate.cli.main`` is the
console entry point.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tidegate import __version__
from tidegate.cli.buffer import buffer_app
from tidegate.cli.check import check
from tidegate.cli.cmd import cmd_app
from tidegate.cli.config_versions import config_app
from tidegate.cli.control import reload, status, tail
from tidegate.cli.devices import devices
from tidegate.cli.main import main
from tidegate.cli.options import command_group
from tidegate.cli.plot import plot
from tidegate.cli.rules import rules_app
from tidegate.cli.run import run
from tidegate.cli.service import service_app
from tidegate.cli.simulate import simulate
from tidegate.cli.top import top

__all__ = ["app", "main"]

app = command_group(
    "tidegate", "IoT edge event gateway: sensors in, YAML rules, a durable outbox, MQTT out."
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tidegate {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """tidegate: the edge gateway that keeps every event it accepted."""


app.command()(check)
app.command()(run)
app.command()(simulate)
app.command()(status)
app.command()(tail)
app.command()(reload)
app.command()(top)
app.command("devices")(devices)
app.command()(plot)
app.add_typer(rules_app, name="rules")
app.add_typer(buffer_app, name="buffer")
app.add_typer(service_app, name="service")
app.add_typer(cmd_app, name="cmd")
app.add_typer(config_app, name="config")
