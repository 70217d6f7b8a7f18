"""``tidegate simulate``: the laptop demo (the work is in ``tidegate.cli.simulation``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tidegate.cli.launch import catch_stop_signals_early


def simulate(
    duration: Annotated[
        float | None,
        typer.Option("--duration", "-d", min=0.1, help="Stop after this many seconds."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Your own config instead of the shipped demo: its drivers and rules, with "
            "its outbox in a folder of its own (see --data-dir) and the private broker in "
            "place of its mqtt: section.",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the outbox lives (kept between runs), in place of the config's "
            "data_dir. Default: $XDG_STATE_HOME/tidegate/simulate, else "
            "~/.local/state/tidegate/simulate; with -c, the folder in there named after the "
            "config's gateway id (else after the file).",
            show_default=False,
        ),
    ] = None,
    broker: Annotated[
        bool,
        typer.Option(
            "--broker/--no-broker",
            help="Send to a private Mosquitto on a free loopback port, in place of the "
            "config's mqtt: section. --no-broker keeps that section (or, without one, keeps "
            "the events in the outbox).",
        ),
    ] = True,
) -> None:
    """The laptop demo: simulated sensors → rules → outbox → a local broker."""
    catch_stop_signals_early()  # before the runtime's imports, which take a while
    from tidegate.cli import simulation  # noqa: PLC0415 - the whole runtime

    simulation.simulate(config, data_dir, duration, broker)
