"""``tidegate buffer``: look into the outbox, export it, replay dead letters, purge.

Every command takes the outbox from the config (``-c``; ``buffer.path`` or
``<gateway.data_dir>/outbox.db``) or directly (``--db``), and works whether
the gateway is stopped or running (see ``tidegate.outbox.admin.inspect``).
The outbox's admin modules (and sqlite-utils, which only these commands use)
are imported when a command runs, not for help or other commands.
"""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tidegate.cli.options import ConfigOption, command_group
from tidegate.config.paths import resolve_config_path
from tidegate.errors import BufferError_, TidegateError
from tidegate.wording import count, noun

if TYPE_CHECKING:
    from sqlite_utils import Database

    from tidegate.outbox.admin.replay import ReplayPlan

buffer_app = command_group(None, "Inspect the outbox, export it, replay dead letters, purge it.")


class ConfirmationRequired(TidegateError):
    """A destructive command without ``--yes`` and no terminal to ask on."""

    exit_code = 2


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="The outbox file itself, instead of a config.", show_default=False),
]
DeadOption = Annotated[
    bool, typer.Option("--dead-letters", help="Dead letters instead of undelivered events.")
]
SourceOption = Annotated[
    str | None,
    typer.Option("--source", help="Only sources matching this glob (e.g. 'greenhouse*')."),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _outbox_path(config: Path | None, db: Path | None, command: str) -> Path:
    """``--db``, else the config's outbox. When the config's gateway has never run here
    but `tidegate simulate -c` of it has, the one line says which ``--db`` to use: -c
    keeps meaning the config's own outbox (a purge must not land on another file)."""
    if config is not None and db is not None:
        raise typer.BadParameter("give -c CONFIG or --db PATH, not both")
    if db is not None:
        return db
    from tidegate.config.loader import load_config  # noqa: PLC0415
    from tidegate.demo.state import simulated_dir  # noqa: PLC0415 - with load_config

    file = resolve_config_path(config)
    cfg = load_config(file)
    path = cfg.outbox_path
    if not path.is_file():
        given_id = cfg.gateway.id if "id" in cfg.gateway.model_fields_set else None
        simulated = simulated_dir(file, given_id) / "outbox.db"
        if simulated.is_file() and simulated != path:
            raise BufferError_(
                f"no outbox at {path} (has the gateway run with this configuration?); "
                f"`tidegate simulate -c {file}` keeps its own: "
                f"tidegate buffer {command} --db {simulated}"
            )
    return path


def _confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; without one, only ``--yes`` proceeds."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfirmationRequired(f"{question[:-1]}: refusing without --yes (not a terminal)")
    typer.confirm(question, abort=True)


# -- commands ------------------------------------------------------------------------


@buffer_app.command()
def stats(
    *,
    config: ConfigOption = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    top: Annotated[
        int, typer.Option("--top", min=1, help="Dead-letter reasons listed, most frequent first.")
    ] = 10,
) -> None:
    """Depth, bytes, oldest age, per source and priority, drops, dead letters."""
    import orjson  # noqa: PLC0415

    from tidegate.outbox.admin import format as fmt  # noqa: PLC0415
    from tidegate.outbox.admin import inspect as admin  # noqa: PLC0415

    path = _outbox_path(config, db, "stats")
    handle = admin.open_for_reading(path)
    try:
        result = admin.read_stats(handle, path, top)
    finally:
        handle.close()
    if as_json:
        typer.echo(orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        fmt.print_stats(result)


@buffer_app.command()
def peek(
    *,
    config: ConfigOption = None,
    db: DbOption = None,
    limit: Annotated[int, typer.Option("-n", "--count", min=1, help="How many.")] = 10,
    dead: DeadOption = False,
    source: SourceOption = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per line.")] = False,
) -> None:
    """The oldest undelivered events (or dead letters)."""
    from tidegate.outbox.admin import format as fmt  # noqa: PLC0415
    from tidegate.outbox.admin import inspect as admin  # noqa: PLC0415

    handle = admin.open_for_reading(_outbox_path(config, db, "peek"))
    now = time.time()
    shown = 0
    try:
        if jsonl:
            with fmt.output(None) as out:
                fmt.write_jsonl(fmt.records(handle, dead, source, limit), out)
            return
        with admin.snapshot(handle):
            if dead:
                for letter in admin.dead_letters(handle, source_glob=source, limit=limit):
                    fmt.print_letter(letter, now)
                    shown += 1
            else:
                for entry in admin.entries(handle, source_glob=source, limit=limit):
                    fmt.print_entry(entry, now)
                    shown += 1
    finally:
        handle.close()
    if not shown:
        typer.echo("no dead letters" if dead else "the outbox is empty")


@buffer_app.command()
def export(
    *,
    export_format: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="jsonl or csv.", show_default=False)
    ],
    config: ConfigOption = None,
    db: DbOption = None,
    dead: DeadOption = False,
    source: SourceOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; default: stdout.")
    ] = None,
) -> None:
    """Every undelivered event (or dead letter), oldest first, as JSON Lines or CSV."""
    from tidegate.outbox.admin import format as fmt  # noqa: PLC0415
    from tidegate.outbox.admin import inspect as admin  # noqa: PLC0415

    handle = admin.open_for_reading(_outbox_path(config, db, "export"))
    try:
        records = fmt.records(handle, dead, source, None)
        with fmt.output(output) as out:
            if export_format is ExportFormat.csv:
                n = fmt.write_csv(records, fmt.LETTER_COLUMNS if dead else fmt.ENTRY_COLUMNS, out)
            else:
                n = fmt.write_jsonl(records, out)
    finally:
        handle.close()
    what = count(n, "dead letter" if dead else "event", grouped=True)
    typer.echo(f"exported {what}" + (f" to {output}" if output else ""), err=True)


@buffer_app.command()
def commands(
    *,
    config: ConfigOption = None,
    db: DbOption = None,
    limit: Annotated[int, typer.Option("-n", "--count", min=1, help="The newest N.")] = 50,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per line.")] = False,
) -> None:
    """The command audit: every command from the cloud and its result, oldest first."""
    import json  # noqa: PLC0415

    from tidegate.commands.audit import read_rows  # noqa: PLC0415
    from tidegate.outbox.admin import inspect as admin  # noqa: PLC0415
    from tidegate.timefmt import rfc3339  # noqa: PLC0415

    handle = admin.open_for_reading(_outbox_path(config, db, "commands"))
    try:
        rows = read_rows(handle.conn, limit)
    finally:
        handle.close()
    for row in rows:
        if jsonl:
            typer.echo(json.dumps(row.to_json()))
            continue
        why = f" ({row.reason})" if row.reason else ""
        typer.echo(
            f"{rfc3339(row.received)}  {row.command:<14} {row.status}{why}  "
            f"id={row.id or row.claimed}  via {row.uplink}"
        )
    if not rows and not jsonl:
        typer.echo("no commands recorded")


@buffer_app.command()
def replay(
    *,
    config: ConfigOption = None,
    db: DbOption = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="Only dead letters whose reason matches this glob. Events the outbox "
            "found damaged are replayed only if it starts with their reason's first word "
            "(e.g. 'checksum*').",
        ),
    ] = None,
    yes: YesOption = False,
) -> None:
    """Put dead-lettered events back into the outbox, with their original ids."""
    from tidegate.outbox.admin import inspect as admin  # noqa: PLC0415
    from tidegate.outbox.admin import replay as buffer_replay  # noqa: PLC0415

    path = _outbox_path(config, db, "replay")
    handle = admin.open_for_writing(path)
    try:
        plan = buffer_replay.plan_replay(handle, reason)
        if plan.not_replayable:
            n = plan.not_replayable
            typer.echo(
                f"{count(n, 'dead letter', grouped=True)} {noun(n, 'holds', 'hold')} raw input "
                "or no topic, not events: not replayable, left in place",
                err=True,
            )
        _say_damaged(plan)
        if not plan.replayable:
            typer.echo("no dead-lettered events to replay")
            return
        what = count(len(plan.replayable), "dead-lettered event", grouped=True)
        _confirm(f"replay {what} into {path}?", yes)
        try:
            moved = buffer_replay.replay(handle, plan.replayable)
        finally:  # also after a failure half-way: what committed is in the file
            _tell_the_ledger(path, handle)
    finally:
        handle.close()
    typer.echo(f"replayed {count(moved, 'event', grouped=True)} into the outbox")
    if plan.failing:
        n = plan.failing
        them, were = noun(n, "it", "them"), noun(n, "it was", "they were")
        typer.echo(
            f"{n:,} of them {noun(n, 'fails', 'fail')} the checksum {were} stored with: the "
            f"gateway will move {them} back to the dead letters, not publish {them}"
        )


def _say_damaged(plan: ReplayPlan) -> None:
    for why, n in plan.damaged.items():
        typer.echo(
            f"{count(n, 'dead letter', grouped=True)} {noun(n, 'is an event', 'are events')} "
            f"the outbox found damaged ({why}): left in place; to replay "
            f"{noun(n, 'it', 'them')}, name the reason (--reason '{why.split(' ', 1)[0]}*')"
        )


def _tell_the_ledger(path: Path, handle: Database) -> None:
    """A stopped gateway's ledger describes its undelivered events: after a purge or a
    replay it must describe the file as it is now, or a later loss of the file would
    count purged events as lost and replayed ones not. A running gateway (or no ledger
    yet) is left to itself; this never fails the command."""
    from tidegate.outbox.admin.note import note_admin_change  # noqa: PLC0415

    note_admin_change(path, handle.conn)


@buffer_app.command()
def purge(
    *,
    config: ConfigOption = None,
    db: DbOption = None,
    dead: Annotated[bool, typer.Option("--dead-letters", help="Remove the dead letters.")] = False,
    outbox: Annotated[bool, typer.Option("--outbox", help="Remove undelivered events.")] = False,
    everything: Annotated[bool, typer.Option("--all", help="Both.")] = False,
    yes: YesOption = False,
) -> None:
    """Remove undelivered events and/or dead letters (counted as purged)."""
    if not (dead or outbox or everything):
        raise typer.BadParameter("say what to purge: --outbox, --dead-letters or --all")
    dead, outbox = dead or everything, outbox or everything
    from tidegate.outbox.admin import inspect as admin  # noqa: PLC0415
    from tidegate.outbox.admin import purge as buffer_purge  # noqa: PLC0415

    path = _outbox_path(config, db, "purge")
    handle = admin.open_for_writing(path)
    try:
        planned = buffer_purge.count_for_purge(handle, outbox=outbox, dead=dead)
        if not (planned.outbox or planned.dead_letters):
            typer.echo("nothing to purge")
            return
        parts = [count(planned.outbox, "undelivered event", grouped=True)] if outbox else []
        parts += [count(planned.dead_letters, "dead letter", grouped=True)] if dead else []
        _confirm(f"permanently remove {' and '.join(parts)} from {path}?", yes)
        try:
            done = buffer_purge.purge(handle, outbox=outbox, dead=dead)
        finally:
            _tell_the_ledger(path, handle)
    finally:
        handle.close()
    typer.echo(
        f"purged {count(done.outbox, 'undelivered event', grouped=True)} and "
        f"{count(done.dead_letters, 'dead letter', grouped=True)}"
    )
