"""Where a gateway's control socket is: one rule, for the gateway and its clients.

A gateway listens on ``control.socket`` when its config names one (relative
to the config file, like every path in it). Otherwise under systemd it
listens in its runtime directory (``$RUNTIME_DIRECTORY/control.sock``) and
links ``<data_dir>/control.sock`` to it; elsewhere on
``<data_dir>/control.sock``. Two gateways on one machine have two data
directories (one outbox each), hence two sockets, and a client given a
config file (``-c``) reaches that file's gateway and no other.

Without ``-c`` or ``$TIDEGATE_CONFIG`` a client uses the service's config,
/etc/tidegate/tidegate.yaml; where there is none, it talks to the laptop
demo (`tidegate simulate`), the one gateway that runs without a file.

`tidegate simulate -c FILE` runs FILE's gateway with its socket in a folder
of its own below the demo's (``tidegate.demo.state.simulated_dir``), not in
FILE's data_dir: ``-c FILE`` still means the gateway of FILE's data_dir (a
reload or a buffer purge must not land on another gateway than the file
says). When nothing listens there but the simulated one does, the "no
gateway is running" line says so, with the command that reaches it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tidegate.config.paths import (
    DEFAULT_DATA_DIR,
    HOW_TO_NAME_ONE,
    config_file_exists,
    config_given,
    config_relative,
    require_config_file,
    resolve_config_path,
)
from tidegate.config.yaml_limits import lenient_load, peek_yaml
from tidegate.demo.state import demo_data_dir, given_gateway_id, simulated_dir
from tidegate.ops import unix_socket
from tidegate.ops.control_client import ControlError

SOCKET_NAME = "control.sock"


def runtime_directory(environ: Mapping[str, str] | None = None) -> Path | None:
    """systemd's ``RuntimeDirectory=`` for this service (the first, if several)."""
    runtime = (os.environ if environ is None else environ).get("RUNTIME_DIRECTORY", "")
    first = runtime.split(":")[0]
    return Path(first) if first else None


def serving_path(
    configured: Path | None, data_dir: Path, environ: Mapping[str, str] | None = None
) -> Path:
    """Where a gateway with this ``control.socket`` and data directory listens."""
    if configured is not None:
        return configured
    runtime = runtime_directory(environ)
    return (runtime if runtime is not None else data_dir) / SOCKET_NAME


def data_dir_socket(data_dir: Path) -> Path:
    """Where clients look for a gateway of this data directory (maybe a link)."""
    return data_dir / SOCKET_NAME


def answers(path: Path) -> bool:
    """Whether a gateway listens on ``path`` (a socket left by a killed one does not)."""
    try:
        unix_socket.connect(path, 2.0).close()  # the server takes a silent hang-up quietly
    except OSError:
        return False
    return True


def simulated_socket(config_path: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where `tidegate simulate -c config_path` listens (without --data-dir)."""
    data = peek_yaml(config_path)
    return data_dir_socket(simulated_dir(config_path, given_gateway_id(data), environ))


def running_simulations(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The sockets of the `tidegate simulate -c` gateways that run now."""
    return [
        path for path in sorted(demo_data_dir(environ).glob(f"*/{SOCKET_NAME}")) if answers(path)
    ]


def configured_socket(
    config_path: Path, environ: Mapping[str, str] | None = None, *, named: bool = True
) -> Path:
    """The socket of the gateway that runs ``config_path``.

    The file is read leniently: a client must find the gateway even when the
    file has since been edited into an invalid state (that is when `tidegate
    reload` is most useful). A file the user ``named`` that is not even YAML
    is a ConfigError at its position: the defaults would be another gateway's
    socket (the service's), and a reload meant for one gateway would reach
    another. Only the default file, which is the service's own, falls back.
    """
    # Bounded: the file may be hostile, not only invalid.
    data = peek_yaml(config_path) if named else lenient_load(config_path)
    base = config_path.parent.resolve()
    control = data.get("control") if isinstance(data, dict) else None
    control = control if isinstance(control, dict) else {}
    if control.get("enabled") is False:
        raise ControlError(f"{config_path} turns the control API off (control.enabled: false)")
    socket = control.get("socket")
    if isinstance(socket, str) and socket:
        return config_relative(Path(socket), base)
    gateway = data.get("gateway") if isinstance(data, dict) else None
    data_dir = gateway.get("data_dir") if isinstance(gateway, dict) else None
    folder = Path(data_dir) if isinstance(data_dir, str) and data_dir else DEFAULT_DATA_DIR
    return serving_path(None, config_relative(folder, base), environ)


@dataclass(frozen=True, slots=True)
class Target:
    """The socket a client should use, and what to say when nothing listens there."""

    path: Path
    not_running: str | None = None
    """The one line for "no gateway is running" when the default would mislead."""
    config: Path | None = None
    """The config file whose gateway this is; with ``named``, the `simulate -c` to look for."""
    named: bool = False
    """The user named ``config`` (``-c``, ``$TIDEGATE_CONFIG``); else look for any
    `simulate -c` gateway, as a user who names none may mean one of those."""
    environ: Mapping[str, str] | None = None

    def explain(self, command: str = "status") -> str:
        """The one line for "no gateway is running", for `tidegate command`; it names
        the command that reaches a simulated gateway when one runs (looked for only
        now, when nothing listens on ``path``)."""
        line = self.not_running or f"no gateway is running (nothing listens on {self.path})"
        if self.config is not None and self.named:
            simulated = simulated_socket(self.config, self.environ)
            if simulated != self.path and answers(simulated):
                line += (
                    f"; the simulated one of this file (`tidegate simulate -c {self.config}`) "
                    f"runs: tidegate {command} --socket {simulated}"
                )
            return line
        line += "".join(
            f"; a simulated gateway '{path.parent.name}' runs: tidegate {command} --socket {path}"
            for path in running_simulations(self.environ)
        )
        return line


def locate_socket(
    explicit: Path | None, config: Path | None, environ: Mapping[str, str] | None = None
) -> Target:
    """The socket a client should use: ``--socket``, else that of the config
    (``-c``, ``$TIDEGATE_CONFIG``, /etc/tidegate/tidegate.yaml), else the demo's."""
    if explicit is not None:
        return Target(explicit)
    path = resolve_config_path(config, environ)
    named = config_given(config, environ)
    if not named and not config_file_exists(path):
        demo = data_dir_socket(demo_data_dir(environ))
        return Target(
            demo,
            f"no gateway is running: there is no {path} ({HOW_TO_NAME_ONE}), and the demo "
            f"(`tidegate simulate`) does not run either (nothing listens on {demo})",
            environ=environ,
        )
    file = require_config_file(path)
    return Target(
        configured_socket(file, environ, named=named), config=file, named=named, environ=environ
    )
