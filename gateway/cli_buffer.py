"""``tidegate buffer``: look into the outbox, export it, replay dead letters, purge.

Every command takes the outbox from the config (``-c``; ``buffer.path`` or
``<gateway.data_dir>/outbox.db``) or directly (``--db``), and works whether
the gateway is stopped or running (see ``tidegate.buffer_admin``).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import os
import sys
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import orjson
import typer
from sqlite_utils import Database

from tidegate import buffer_admin as admin
from tidegate.buffer_admin import BufferStats, DeadLetter, Entry
from tidegate.config_loader import load_config, resolve_config_path
from tidegate.errors import TidegateError
from tidegate.timefmt import rfc3339

buffer_app = typer.Typer(
    help="Inspect the outbox, export it, replay dead letters, purge it.",
    no_args_is_help=True,
)


class ConfirmationRequired(TidegateError):
    """A destructive command without ``--yes`` and no terminal to ask on."""

    exit_code = 2


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file whose outbox to use. Default: $TIDEGATE_CONFIG, "
        "else /etc/tidegate/tidegate.yaml.",
        show_default=False,
    ),
]
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


def _outbox_path(config: Path | None, db: Path | None) -> Path:
    if config is not None and db is not None:
        raise typer.BadParameter("give -c CONFIG or --db PATH, not both")
    if db is not None:
        return db
    return load_config(resolve_config_path(config)).outbox_path


def _confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; without one, only ``--yes`` proceeds."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfirmationRequired(f"{question[:-1]}: refusing without --yes (not a terminal)")
    typer.confirm(question, abort=True)


# -- formatting ------------------------------------------------------------------------


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _payload_fields(payload: bytes | None) -> tuple[str, object]:
    """(encoding, value): JSON as itself, other UTF-8 as text, anything else as base64."""
    if payload is None:
        return "none", None
    try:
        return "json", orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:
        return "text", payload.decode("utf-8")
    except UnicodeDecodeError:
        return "base64", base64.b64encode(payload).decode("ascii")


def _entry_record(e: Entry) -> dict[str, object]:
    encoding, value = _payload_fields(e.payload)
    return {
        "row": e.id,
        "priority": e.priority,
        "source": e.source,
        "topic": e.topic,
        "qos": e.qos,
        "retain": e.retain,
        "accepted": rfc3339(e.accepted),
        "synced": e.synced,
        "encoding": encoding,
        "payload": value,
    }


def _letter_record(d: DeadLetter) -> dict[str, object]:
    encoding, value = _payload_fields(d.payload)
    return {
        "row": d.id,
        "at": rfc3339(d.at),
        "stage": d.stage,
        "reason": d.reason,
        "source": d.source,
        "topic": d.topic,
        "encoding": encoding,
        "payload": value,
    }


ENTRY_COLUMNS = ("row", "priority", "source", "topic", "qos", "retain", "accepted", "synced")
LETTER_COLUMNS = ("row", "at", "stage", "reason", "source", "topic")


def _records(
    db: Database, dead: bool, source: str | None, limit: int | None
) -> Iterator[dict[str, object]]:
    with admin.snapshot(db):
        if dead:
            for letter in admin.dead_letters(db, source_glob=source, limit=limit):
                yield _letter_record(letter)
        else:
            for entry in admin.entries(db, source_glob=source, limit=limit):
                yield _entry_record(entry)


def _csv_cell(value: object) -> object:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return "" if value is None else value


def _write_csv(records: Iterator[dict[str, object]], columns: tuple[str, ...], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow([*columns, "encoding", "payload"])
    n = 0
    for record in records:
        writer.writerow([_csv_cell(record[c]) for c in (*columns, "encoding", "payload")])
        n += 1
    return n


def _write_jsonl(records: Iterator[dict[str, object]], out: TextIO) -> int:
    n = 0
    for record in records:
        out.write(orjson.dumps(record).decode())
        out.write("\n")
        n += 1
    return n


def _print_stats(s: BufferStats) -> None:
    echo = typer.echo
    echo(f"outbox {s.path}")
    echo(
        f"  file          {_size(s.db_bytes + s.wal_bytes)} "
        f"(database {_size(s.db_bytes)}, WAL {_size(s.wal_bytes)})"
    )
    unsynced = f", {s.unsynced} accepted on an untrusted clock" if s.unsynced else ""
    echo(
        f"  undelivered   {s.depth:,} events, {_size(s.payload_bytes)} of payload, "
        f"oldest {_age(s.oldest_age)}{unsynced}"
    )
    echo(
        "  by priority   " + " · ".join(f"{name} {c.depth:,}" for name, c in s.by_priority.items())
    )
    if s.by_source:
        width = max(len(x.source) for x in s.by_source)
        echo(
            f"  by source     {'':{width}}  {'events':>10} {'payload':>10} {'oldest':>10} "
            f"{'last seq':>10}"
        )
        for x in s.by_source:
            oldest = None if x.oldest is None else s.taken_at - x.oldest
            echo(
                f"                {x.source:{width}}  {x.depth:>10,} {_size(x.payload_bytes):>10} "
                f"{_age(oldest):>10} {x.last_seq:>10,}"
            )
    echo("  counters      " + (", ".join(f"{k} {v:,}" for k, v in s.counters.items()) or "none"))
    if s.pending:
        echo(
            "  not committed "
            + ", ".join(f"{k} {v:,}" for k, v in s.pending.items())
            + " (counted while the disk was full; kept in the ledger)"
        )
    if s.ledger != "ok":
        echo(f"  ledger        {s.ledger}")
    echo(f"  dead letters  {s.dead_letters:,} ({_size(s.dead_letter_bytes)})")
    for r in s.dead_by_reason:
        echo(f"    {r.count:>8,}  {r.stage}: {r.reason}")
    if s.dead_other:
        echo(f"    {s.dead_other:>8,}  (other reasons)")


def _print_entry(e: Entry, now: float) -> None:
    text = e.payload.decode("utf-8", errors="replace")
    typer.echo(
        f"#{e.id} {e.priority} {_age(now - e.accepted)} ago  {e.source}  {e.topic}"
        f"{'' if e.synced else ' (untrusted clock)'}\n    {text}"
    )


def _print_letter(d: DeadLetter, now: float) -> None:
    encoding, value = _payload_fields(d.payload)
    text = d.payload.decode("utf-8") if encoding in ("json", "text") and d.payload else f"{value}"
    typer.echo(
        f"#{d.id} {_age(now - d.at)} ago  {d.stage}: {d.reason}  source {d.source}  "
        f"topic {d.topic}\n    [{encoding}] {text}"
    )


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
    path = _outbox_path(config, db)
    handle = admin.open_for_reading(path)
    try:
        result = admin.read_stats(handle, path, top)
    finally:
        handle.close()
    if as_json:
        typer.echo(orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print_stats(result)


@buffer_app.command()
def peek(
    *,
    config: ConfigOption = None,
    db: DbOption = None,
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="How many.")] = 10,
    dead: DeadOption = False,
    source: SourceOption = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per line.")] = False,
) -> None:
    """The oldest undelivered events (or dead letters)."""
    handle = admin.open_for_reading(_outbox_path(config, db))
    now = time.time()
    shown = 0
    try:
        if jsonl:
            with _output(None) as out:
                _write_jsonl(_records(handle, dead, source, count), out)
            return
        with admin.snapshot(handle):
            if dead:
                for letter in admin.dead_letters(handle, source_glob=source, limit=count):
                    _print_letter(letter, now)
                    shown += 1
            else:
                for entry in admin.entries(handle, source_glob=source, limit=count):
                    _print_entry(entry, now)
                    shown += 1
    finally:
        handle.close()
    if not shown:
        typer.echo("no dead letters" if dead else "the outbox is empty")


@contextlib.contextmanager
def _output(target: Path | None) -> Iterator[TextIO]:
    if target is None:
        try:
            yield sys.stdout
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (`... | head`): stop quietly, as the Python docs advise
            # (stdout now goes nowhere, so the flush at exit cannot fail again).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        return
    try:
        with target.open("w", encoding="utf-8", newline="") as out:
            yield out
    except OSError as exc:
        raise TidegateError(f"cannot write {target}: {exc.strerror}") from None


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
    handle = admin.open_for_reading(_outbox_path(config, db))
    try:
        records = _records(handle, dead, source, None)
        with _output(output) as out:
            if export_format is ExportFormat.csv:
                n = _write_csv(records, LETTER_COLUMNS if dead else ENTRY_COLUMNS, out)
            else:
                n = _write_jsonl(records, out)
    finally:
        handle.close()
    what = "dead letters" if dead else "events"
    typer.echo(f"exported {n:,} {what}" + (f" to {output}" if output else ""), err=True)


@buffer_app.command()
def replay(
    *,
    config: ConfigOption = None,
    db: DbOption = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Only dead letters whose reason matches this glob."),
    ] = None,
    yes: YesOption = False,
) -> None:
    """Put dead-lettered events back into the outbox, with their original ids."""
    path = _outbox_path(config, db)
    handle = admin.open_for_writing(path)
    try:
        plan = admin.plan_replay(handle, reason)
        if plan.not_replayable:
            typer.echo(
                f"{plan.not_replayable:,} dead letters hold raw input, not events: "
                "not replayable, left in place",
                err=True,
            )
        if not plan.replayable:
            typer.echo("no dead-lettered events to replay")
            return
        _confirm(f"replay {len(plan.replayable):,} dead-lettered events into {path}?", yes)
        moved = admin.replay(handle, plan.replayable)
    finally:
        handle.close()
    typer.echo(f"replayed {moved:,} events into the outbox")


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
    path = _outbox_path(config, db)
    handle = admin.open_for_writing(path)
    try:
        planned = admin.count_for_purge(handle, outbox=outbox, dead=dead)
        if not (planned.outbox or planned.dead_letters):
            typer.echo("nothing to purge")
            return
        parts = [f"{planned.outbox:,} undelivered events"] if outbox else []
        parts += [f"{planned.dead_letters:,} dead letters"] if dead else []
        _confirm(f"permanently remove {' and '.join(parts)} from {path}?", yes)
        done = admin.purge(handle, outbox=outbox, dead=dead)
    finally:
        handle.close()
    typer.echo(f"purged {done.outbox:,} undelivered events and {done.dead_letters:,} dead letters")
