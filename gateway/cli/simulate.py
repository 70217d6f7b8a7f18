"""``tidegate simulate``: the laptop demo (the work is in ``tidegate.cli.simulation``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tidegate.cli.launch import catch_stop_signals_early
from tidegate.demo.state import demo_data_dir


def simulate(
    duration: Annotated[
        float | None,
        typer.Option("--duration", "-d", min=0.1, help="Stop after this many seconds."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Your own config instead of the shipped demo."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the demo's outbox lives (kept between runs). Default: "
            "$XDG_STATE_HOME/tidegate/simulate, else ~/.local/state/tidegate/simulate.",
            show_default=False,
        ),
    ] = None,
    broker: Annotated[
        bool,
        typer.Option(
            "--broker/--no-broker",
            help="Start a private Mosquitto on a free loopback port when the config has none.",
        ),
    ] = True,
) -> None:
    """The laptop demo: simulated sensors → rules → outbox → a local broker."""
    catch_stop_signals_early()  # before the runtime's imports, which take a while
    from tidegate.cli import simulation  # noqa: PLC0415 - the whole runtime

    simulation.simulate(config, data_dir or demo_data_dir(), duration, broker)
