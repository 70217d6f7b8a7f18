"""What ``tidegate buffer`` prints and writes: sizes and ages for people, events and
dead letters as JSON Lines or CSV records, and the owner-only files it exports to."""

from __future__ import annotations

import base64
import contextlib
import csv
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import orjson
import typer
from sqlite_utils import Database

from tidegate.errors import TidegateError
from tidegate.outbox.admin.access import snapshot
from tidegate.outbox.admin.listing import DeadLetter, Entry, dead_letters, entries
from tidegate.outbox.admin.stats import BufferStats
from tidegate.outbox.routing import route_topic
from tidegate.timefmt import rfc3339
from tidegate.wording import count


def size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def payload_fields(payload: bytes | None) -> tuple[str, object]:
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


def entry_record(e: Entry) -> dict[str, object]:
    encoding, value = payload_fields(e.payload)
    return {
        "row": e.id,
        "priority": e.priority,
        "source": e.source,
        "topic": _shown(e.topic),
        "qos": e.qos,
        "retain": e.retain,
        "accepted": None if e.accepted is None else rfc3339(e.accepted),
        "synced": e.synced,
        "encoding": encoding,
        "payload": value,
    }


def letter_record(d: DeadLetter) -> dict[str, object]:
    encoding, value = payload_fields(d.payload)
    return {
        "row": d.id,
        "at": rfc3339(d.at),
        "stage": d.stage,
        "reason": d.reason,
        "source": d.source,
        "topic": _shown(d.topic),
        "encoding": encoding,
        "payload": value,
    }


def _shown(topic: str | None) -> str | None:
    """A stored route's topic as it is sent: without the uplinks and expiry before it
    (``tidegate.outbox.routing``)."""
    return None if topic is None else str(route_topic(topic))


ENTRY_COLUMNS = ("row", "priority", "source", "topic", "qos", "retain", "accepted", "synced")
LETTER_COLUMNS = ("row", "at", "stage", "reason", "source", "topic")


def records(
    db: Database, dead: bool, source: str | None, limit: int | None
) -> Iterator[dict[str, object]]:
    with snapshot(db):
        if dead:
            for letter in dead_letters(db, source_glob=source, limit=limit):
                yield letter_record(letter)
        else:
            for entry in entries(db, source_glob=source, limit=limit):
                yield entry_record(entry)


def csv_cell(value: object) -> object:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return "" if value is None else value


def write_csv(records: Iterator[dict[str, object]], columns: tuple[str, ...], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow([*columns, "encoding", "payload"])
    n = 0
    for record in records:
        writer.writerow([csv_cell(record[c]) for c in (*columns, "encoding", "payload")])
        n += 1
    return n


def write_jsonl(records: Iterator[dict[str, object]], out: TextIO) -> int:
    n = 0
    for record in records:
        out.write(orjson.dumps(record).decode())
        out.write("\n")
        n += 1
    return n


def print_stats(s: BufferStats) -> None:
    echo = typer.echo
    echo(f"outbox {s.path}")
    echo(
        f"  file          {size(s.db_bytes + s.wal_bytes)} "
        f"(database {size(s.db_bytes)}, WAL {size(s.wal_bytes)})"
    )
    unsynced = f", {s.unsynced} accepted on an untrusted clock" if s.unsynced else ""
    echo(
        f"  undelivered   {count(s.depth, 'event', grouped=True)}, "
        f"{size(s.payload_bytes)} of payload, oldest {age(s.oldest_age)}{unsynced}"
    )
    echo(
        "  by priority   " + " · ".join(f"{name} {c.depth:,}" for name, c in s.by_priority.items())
    )
    if s.by_uplink:
        echo("  by uplink     " + " · ".join(f"{n} {d:,} to send" for n, d in s.by_uplink.items()))
    if s.by_source:
        width = max(len(x.source) for x in s.by_source)
        echo(
            f"  by source     {'':{width}}  {'events':>10} {'payload':>10} {'oldest':>10} "
            f"{'last seq':>10}"
        )
        for x in s.by_source:
            oldest = None if x.oldest is None else s.taken_at - x.oldest
            echo(
                f"                {x.source:{width}}  {x.depth:>10,} {size(x.payload_bytes):>10} "
                f"{age(oldest):>10} {x.last_seq:>10,}"
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
    echo(f"  dead letters  {s.dead_letters:,} ({size(s.dead_letter_bytes)})")
    for r in s.dead_by_reason:
        echo(f"    {r.count:>8,}  {r.stage}: {r.reason}")
    if s.dead_other:
        echo(f"    {s.dead_other:>8,}  (other reasons)")


def print_entry(e: Entry, now: float) -> None:
    text = e.payload.decode("utf-8", errors="replace")
    typer.echo(
        f"#{e.id} {e.priority} {age(None if e.accepted is None else now - e.accepted)} ago  "
        f"{e.source}  {_shown(e.topic)}"
        f"{'' if e.synced else ' (untrusted clock)'}\n    {text}"
    )


def print_letter(d: DeadLetter, now: float) -> None:
    encoding, value = payload_fields(d.payload)
    text = d.payload.decode("utf-8") if encoding in ("json", "text") and d.payload else f"{value}"
    # Input a driver rejected never had a topic: say nothing rather than "topic None".
    topic = f"  topic {_shown(d.topic)}" if d.topic is not None else ""
    typer.echo(
        f"#{d.id} {age(now - d.at)} ago  {d.stage}: {d.reason}  source {d.source}{topic}"
        f"\n    [{encoding}] {text}"
    )


@contextlib.contextmanager
def output(target: Path | None) -> Iterator[TextIO]:
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
        with private_file(target) as out:
            yield out
    except OSError as exc:
        raise TidegateError(f"cannot write {target}: {exc.strerror}") from None


FILE_MODE = 0o600
"""An export holds the events themselves: owner-only, whatever the umask."""


@contextlib.contextmanager
def private_file(target: Path) -> Iterator[TextIO]:
    """``target`` opened for writing, owner-only: created 0600, or an existing regular
    file made 0600 before a byte is written (a pipe or a device is left as it is)."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, FILE_MODE)
        out = open(fd, "w", encoding="utf-8", newline="", closefd=True)  # noqa: SIM115
    except BaseException:
        os.close(fd)
        raise
    with out:
        yield out
