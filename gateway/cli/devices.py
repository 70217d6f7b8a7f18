"""``tidegate devices``: the serial ports and GPIO chips this machine has.

Registered in ``tidegate.cli.app`` with ``app.command("devices")(devices)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from tidegate.ops.devices import render_report, scan_devices


def devices(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON, for scripts.")
    ] = False,
) -> None:
    """List serial ports (path, by-id name, USB VID:PID) and GPIO chips with their lines."""
    report = scan_devices()
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
    else:
        typer.echo(render_report(report))
