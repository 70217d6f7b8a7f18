"""``tidegate plot``: the local history as a chart, in the terminal or to a file.

Reads the history file read-only (``-c`` the config's ``history.path`` or
``<data_dir>/history.db``, or ``--db``), whether the gateway runs or not.
matplotlib is imported only when ``-o`` asks for a file.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from tidegate.cli.options import ConfigOption
from tidegate.errors import TidegateError

IMAGE_SUFFIXES = (".png", ".svg")


class PlotUsage(TidegateError):
    """Bad arguments: one line, exit 2."""

    exit_code = 2


def _history_file(config: Path | None, db: Path | None) -> Path:
    if config is not None and db is not None:
        raise PlotUsage("give -c CONFIG or --db PATH, not both")
    if db is not None:
        return db
    from tidegate.config.loader import load_config  # noqa: PLC0415
    from tidegate.config.paths import resolve_config_path  # noqa: PLC0415
    from tidegate.history.recorder import history_path  # noqa: PLC0415

    return history_path(load_config(resolve_config_path(config)))


def _seconds(text: str) -> float:
    from tidegate.config.types import parse_duration  # noqa: PLC0415

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise PlotUsage(f"--last: {exc}") from None
    if not isinstance(seconds, float) or seconds <= 0:
        raise PlotUsage(f"--last: '{text}' is not a positive duration (e.g. 30m, 24h, 7d)")
    return seconds


def plot(
    signals: Annotated[
        list[str],
        typer.Argument(
            help="Signals as source/name, or globs (e.g. 'greenhouse/*').", show_default=False
        ),
    ],
    *,
    last: Annotated[str, typer.Option("--last", help="How far back, e.g. 30m, 24h, 7d.")] = "24h",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write a PNG or SVG here instead of the terminal.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db", help="The history file itself, instead of a config.", show_default=False
        ),
    ] = None,
    height: Annotated[
        int, typer.Option("--height", min=4, max=100, help="Rows per signal in the terminal.")
    ] = 12,
) -> None:
    """Chart signals from the local history (`history:`): alarms and gaps shown."""
    window = _seconds(last)
    if output is not None and output.suffix.lower() not in IMAGE_SUFFIXES:
        raise PlotUsage(f"-o {output}: write a .png or an .svg file")
    from tidegate.history import query  # noqa: PLC0415

    handle = query.open_read_only(_history_file(config, db))
    end = time.time()
    start = end - window
    found: list[query.Series] = []
    alarms: dict[str, list[query.AlarmSpan]] = {}
    missing: list[str] = []
    try:
        for pattern in signals:
            matched = query.matching(handle, pattern)
            series = [query.read_series(handle, s, start, end) for s in matched]
            series = [s for s in series if len(s.t)]
            if not series:
                missing.append(pattern)
            for one in series:
                if all(one.signal != f.signal for f in found):
                    found.append(one)
                    alarms[one.signal.label] = query.alarm_spans(handle, one.signal, start, end)
    finally:
        handle.close()
    if found:
        if output is not None:
            try:
                from tidegate.history.chart_image import draw  # noqa: PLC0415 - matplotlib
            except ModuleNotFoundError as exc:
                if exc.name is None or not exc.name.startswith("matplotlib"):
                    raise
                raise PlotUsage(
                    "a PNG or SVG needs matplotlib: pip install 'tidegate[plot]' (without -o, "
                    "the chart is drawn in the terminal)"
                ) from None
            draw(found, alarms, start, end, output)
            typer.echo(f"wrote {output}")
        else:
            from tidegate.history.chart_text import panel  # noqa: PLC0415

            width = shutil.get_terminal_size().columns
            for one in found:
                lines = panel(one, alarms[one.signal.label], start, end, width=width, height=height)
                typer.echo("\n".join(lines))
    if missing:
        names = ", ".join(missing)
        print(f"tidegate: no data for {names} in the last {last}", file=sys.stderr)
        raise typer.Exit(1)
