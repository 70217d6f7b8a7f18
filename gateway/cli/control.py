"""``tidegate status|tail|reload``: talk to a running gateway over its control socket.

Which gateway: ``--socket``, else the one of the config file (``-c``,
``$TIDEGATE_CONFIG``, /etc/tidegate/tidegate.yaml; see
``tidegate.ops.control_socket``). They import the control client, only when
they run (help needs typer alone), and nothing of the runtime. Errors are
``TidegateError`` subclasses, which the CLI's ``main()`` turns into one line
and an exit code; "no gateway is running" is one of them (exit 1).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from tidegate.cli.options import ControlConfigOption, SocketOption
from tidegate.cli.reports import control_client, status_report
from tidegate.wording import count

RELOAD_TIMEOUT = 120.0
"""Compiling a large rule set on a Pi Zero can take a while."""


def status(
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    socket: SocketOption = None,
    config: ControlConfigOption = None,
) -> None:
    """Show the running gateway's drivers, rules, outbox, broker and rates."""
    typer.echo(status_report(json_output, socket, config))


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def event_line(event: dict[str, Any]) -> str:
    """``time source/name = value unit [tags] → topic``, one readable line."""
    text = f"{event['time']} {event['source']}/{event['name']} = {_value_text(event['value'])}"
    if event.get("unit"):
        text += f" {event['unit']}"
    if event.get("tags"):
        text += " [" + ", ".join(f"{k}={v}" for k, v in event["tags"].items()) + "]"
    return f"{text} → {event['topic']}"


def tail(
    *,
    source: Annotated[str, typer.Option("--source", help="Only sources matching this glob.")] = "*",
    name: Annotated[str, typer.Option("--name", help="Only event names matching this glob.")] = "*",
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[
        int | None, typer.Option("--count", "-n", min=1, help="Stop after this many events.")
    ] = None,
    socket: SocketOption = None,
    config: ControlConfigOption = None,
) -> None:
    """Follow the live event stream (after the rules), until Ctrl-C."""
    import orjson  # noqa: PLC0415 - the client has it loaded already

    from tidegate.ops.control_client import ControlError  # noqa: PLC0415

    shown = 0
    try:
        for line in control_client(socket, config, command="tail").tail(source, name):
            if "event" in line:
                event = line["event"]
                typer.echo(orjson.dumps(event).decode() if json_output else event_line(event))
                shown += 1
                if limit is not None and shown >= limit:
                    return
            elif "dropped" in line:
                skipped = count(line["dropped"], "event")
                typer.echo(f"tidegate: {skipped} skipped: read too slowly", err=True)
            elif "end" in line:
                typer.echo(f"tidegate: stream ended: {line['end']}", err=True)
                return
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # `tidegate tail | head`: the reader is done, so are we
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    raise ControlError("the gateway closed the stream")


def reload(socket: SocketOption = None, config: ControlConfigOption = None) -> None:
    """Re-read the configuration's rules and apply them without a restart."""
    from tidegate.ops.control_client import ControlError  # noqa: PLC0415

    outcome = control_client(socket, config, RELOAD_TIMEOUT, "reload").reload()
    if not outcome.ok:
        for detail in outcome.details:
            typer.echo(detail, err=True)
        raise ControlError(f"reload refused: {outcome.summary}")
    typer.echo(outcome.summary)
    for detail in outcome.details:
        typer.echo(detail)
