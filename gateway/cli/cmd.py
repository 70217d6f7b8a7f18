"""``tidegate cmd send``: send a command through a broker as the cloud would, and print
its results (the gateway's ``commands:`` section says which exist)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tidegate.cli.options import ConfigOption, command_group
from tidegate.config.paths import resolve_config_path
from tidegate.errors import TidegateError

cmd_app = command_group(None, "Send commands to a gateway through its broker, as the cloud would.")


class CommandUsage(TidegateError):
    exit_code = 2


def _args(pairs: list[str], as_json: str | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (a VALUE that reads as JSON is taken as such: true, 21.5,
    "ON"; else as text), over ``--args`` JSON."""
    args: dict[str, Any] = {}
    if as_json is not None:
        try:
            loaded = json.loads(as_json)
        except ValueError as exc:
            raise CommandUsage(f"--args is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise CommandUsage("--args must be a JSON object, e.g. '{\"state\": true}'")
        args.update(loaded)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise CommandUsage(f"argument {pair!r}: write KEY=VALUE, e.g. state=true")
        try:
            args[key] = json.loads(text)
        except ValueError:
            args[key] = text
    return args


def _live_broker(file: Path, gateway_id: str | None, uplink: str) -> str | None:
    """``host:port`` of the broker the gateway of ``file`` is connected to through
    ``uplink``, where one runs here (as a service, or ``tidegate simulate -c``, whose
    broker is a private one); None when none runs."""
    from tidegate.demo.state import simulated_dir  # noqa: PLC0415
    from tidegate.ops.control_client import ControlClient  # noqa: PLC0415
    from tidegate.ops.control_socket import (  # noqa: PLC0415
        answers,
        configured_socket,
        data_dir_socket,
    )

    for socket in (configured_socket(file), data_dir_socket(simulated_dir(file, gateway_id))):
        if not answers(socket):
            continue
        try:
            doc = ControlClient(socket, 5.0).status()
        except TidegateError:
            continue
        for found in doc.get("uplinks") or []:
            if found.get("name") == uplink and found.get("connected"):
                return str(found["address"])
    return None


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise CommandUsage(f"--broker {text!r}: write HOST:PORT, e.g. 127.0.0.1:1883")
    return host.strip("[]"), int(port)


@cmd_app.command()
def send(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="The command, as the config's `commands.allow` names it."
        ),
    ],
    pairs: Annotated[
        list[str] | None, typer.Argument(metavar="[KEY=VALUE]...", help="Its arguments.")
    ] = None,
    *,
    config: ConfigOption = None,
    args_json: Annotated[
        str | None, typer.Option("--args", help="Arguments as one JSON object.")
    ] = None,
    uplink: Annotated[
        str | None,
        typer.Option("--uplink", help="Through this uplink's broker; default: the first."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the final result, not just the first.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for results.")
    ] = 30.0,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            help="HOST:PORT of the broker; default: the one the gateway of the config runs "
            "with here (a service, or `tidegate simulate -c`), else the uplink's.",
        ),
    ] = None,
    rules_file: Annotated[
        Path | None,
        typer.Option("--rules-file", help="rules_update: the rules file to send (its text)."),
    ] = None,
    new_config: Annotated[
        Path | None,
        typer.Option("--new-config", help="config_update: the whole config file to send."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Each result as a JSON line.")] = False,
) -> None:
    """Sign (with the config's key), publish, and print the results: exit 0 when the
    command was done (or accepted, without --wait), 1 when refused, failed or unanswered."""
    import asyncio  # noqa: PLC0415

    from tidegate.commands.sender import send_command  # noqa: PLC0415
    from tidegate.config.loader import load_config  # noqa: PLC0415
    from tidegate.mqtt.credentials import read_secret  # noqa: PLC0415

    args = _args(pairs or [], args_json)
    for arg, given in (("rules", rules_file), ("config", new_config)):
        if given is not None:
            try:
                args[arg] = given.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandUsage(f"cannot read {given}: {exc}") from None
    file = resolve_config_path(config)
    cfg = load_config(file)
    section = cfg.commands
    if section is None:
        raise CommandUsage("the config has no `commands:` section: the gateway takes no commands")
    uplinks = {u.name: u for u in cfg.all_uplinks()}
    chosen = uplinks.get(uplink) if uplink else next(iter(uplinks.values()), None)
    if chosen is None:
        raise CommandUsage(f"no uplink named {uplink!r} (the uplinks: {', '.join(uplinks)})")
    key = read_secret(
        section.key_file,
        section.key_env,
        section.key_credential,
        named="the commands' HMAC key",
        key="key_credential",
    )
    base = section.topic or f"{cfg.uplink_prefix(chosen)}/cmd"
    given_id = cfg.gateway.id if "id" in cfg.gateway.model_fields_set else None
    where = broker or _live_broker(file, given_id, chosen.name)
    if where is not None:
        host, port = _address(where)
        chosen = chosen.model_copy(update={"host": host, "port": port})
    sent = asyncio.run(send_command(chosen, base, name, args, key, wait_final=wait, within=timeout))
    for result in sent.results:
        if as_json:
            typer.echo(json.dumps(result))
        else:
            detail = result.get("result", result.get("message", result.get("reason", "")))
            shown = json.dumps(detail) if isinstance(detail, dict | list) else detail
            typer.echo(f"{result.get('status')}: {shown}".rstrip(": "))
    last = sent.results[-1] if sent.results else None
    if last is None:
        typer.echo(
            f"no answer on {base}/result/{sent.id} within {timeout:g} s "
            "(is the gateway connected, and does it take commands on this uplink?)",
            err=True,
        )
        raise typer.Exit(1)
    if last.get("status") not in ("done", "accepted"):
        raise typer.Exit(1)
