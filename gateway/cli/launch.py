"""Starting a gateway in this process: what `tidegate run` does, and the stop
signals `run` and `simulate` catch before the runtime is even imported.

Typer-free, so the systemd unit's ``tidegate run --config FILE`` starts it
without building the CLI (``tidegate.cli.fast``). A SIGTERM while the runtime
is imported, the config read or the outbox opened must still mean a clean
stop: it is remembered here, and the serving loop (``tidegate.cli.serve``)
acts on it once it runs.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from tidegate.config.paths import resolve_config_path
from tidegate.errors import ConfigError

stop_requested = threading.Event()


def _remember_stop(signum: int, frame: object) -> None:
    stop_requested.set()


def catch_stop_signals_early() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _remember_stop)
    # A reload asked for while starting is moot (the file is being read now); by
    # default SIGHUP would kill us.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def run_gateway(config: Path | None) -> None:
    """Run the gateway of ``config`` (else the default config) until SIGTERM/SIGINT."""
    catch_stop_signals_early()
    import asyncio  # noqa: PLC0415 - only a running gateway needs these

    from tidegate.cli.serve import serve  # noqa: PLC0415
    from tidegate.config.loader import load_config  # noqa: PLC0415
    from tidegate.ops.log_limit import install_rate_limit  # noqa: PLC0415
    from tidegate.ops.logs import setup_logging  # noqa: PLC0415
    from tidegate.remote.trial import Restart, begin_trial  # noqa: PLC0415

    # Before serve() takes $NOTIFY_SOCKET away: how a restart is done.
    restart = Restart(under_systemd=bool(os.environ.get("NOTIFY_SOCKET")))
    path = resolve_config_path(config)
    trial = begin_trial(path)  # a pending config version: on trial now, or rolled back
    try:
        cfg = load_config(path)
        setup_logging(cfg.logging.level or cfg.gateway.log_level)
        install_rate_limit(cfg.logging.rate_limit)
        if not cfg.all_uplinks():
            print(
                "tidegate: no `mqtt:` or `uplinks:` section; events are only kept in the outbox",
                file=sys.stderr,
            )
        asyncio.run(serve(cfg, config_path=path, restart=restart, trial=trial))
    except Exception as exc:
        if trial is None or trial.settled:
            raise
        # The new config does not even start: the previous one, at once.
        first = exc.messages[0] if isinstance(exc, ConfigError) and exc.messages else f"{exc}"
        print(f"tidegate: error: {first}", file=sys.stderr)
        trial.roll_back(f"the gateway could not start on it: {first}")
        restart.request(f"config update {trial.version.version} rolled back")
    if restart.reason is not None:
        restart.now()
