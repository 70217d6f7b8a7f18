"""``tidegate devices``: the serial ports, GPIO chips, 1-Wire sensors and I²C buses
this machine has.

Registered in ``tidegate.cli.app`` with ``app.command("devices")(devices)``;
pyserial's port listing (and smbus2, to probe I²C
addresses) is imported when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer


def devices(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON, for scripts.")
    ] = False,
) -> None:
    """List serial ports (path, by-id name, USB VID:PID), GPIO chips with their lines,
    1-Wire sensors with a reading, and the addresses answering on each I²C bus."""
    import json  # noqa: PLC0415
    from dataclasses import asdict  # noqa: PLC0415

    from tidegate.ops.devices import render_report, scan_devices  # noqa: PLC0415

    report = scan_devices()
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
    else:
        typer.echo(render_report(report))
