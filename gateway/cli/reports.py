"""What `check` and `status` print, as text, without the typer app.

Shared by their typer commands and by ``tidegate.cli.fast``, which runs their
plain forms without typer; so this module imports neither typer nor, until a
function runs, what the function needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tidegate.config.paths import resolve_config_path
from tidegate.errors import TidegateError
from tidegate.wording import count

if TYPE_CHECKING:
    from tidegate.ops.control_client import ControlClient


class ConfigUsageError(TidegateError):
    """Two different config files named at once."""

    exit_code = 2


def check_summary(path: Path) -> str:
    """Load and validate ``path``; one line saying what it holds (or a ConfigError)."""
    from tidegate.config.loader import load_config  # noqa: PLC0415 - the heavy part

    cfg = load_config(path)
    uplinks = cfg.all_uplinks()
    if cfg.uplinks:
        broker = f"uplinks {', '.join(f'{u.name} {u.host}:{u.effective_port}' for u in uplinks)}"
    elif uplinks:
        broker = f"broker {uplinks[0].host}:{uplinks[0].effective_port}"
    else:
        broker = "no broker (buffer only)"
    return (
        f"{path}: ok — gateway '{cfg.gateway.id}', {count(len(cfg.drivers), 'driver')}, "
        f"{count(len(cfg.rules), 'rule')}, {broker}"
    )


def check_report(file: Path | None, config: Path | None) -> str:
    """`tidegate check` of FILE or ``-c``, else of the default config."""
    if file is not None and config is not None and file != config:
        raise ConfigUsageError("give the config file once: FILE or -c FILE")
    return check_summary(resolve_config_path(file or config))


def control_client(
    socket: Path | None, config: Path | None, timeout: float = 10.0, command: str = "status"
) -> ControlClient:
    """A client for the gateway of ``--socket``, else of the config (see
    ``tidegate.ops.control_socket``); when none runs, its line names the `tidegate
    command --socket …` that reaches a simulated one that does."""
    from tidegate.ops.control_client import ControlClient  # noqa: PLC0415

    if socket is not None:
        return ControlClient(socket, timeout)
    from tidegate.ops.control_socket import locate_socket  # noqa: PLC0415 - reads YAML

    target = locate_socket(socket, config)
    return ControlClient(target.path, timeout, lambda: target.explain(command))


def status_report(json_output: bool, socket: Path | None, config: Path | None) -> str:
    """`tidegate status`: the running gateway's status document, as text or JSON."""
    doc = control_client(socket, config).status()
    if json_output:
        import orjson  # noqa: PLC0415 - the client has it loaded already

        return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
    from tidegate.ops.status_text import render_status  # noqa: PLC0415

    return render_status(doc)
