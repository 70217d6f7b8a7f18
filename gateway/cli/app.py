"""The ``tidegate`` command line.

Errors tidegate raises on purpose become one line on stderr and an exit code
(2 for configuration and usage, 1 otherwise); tracebacks are only for bugs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from importlib.resources import as_file, files
from pathlib import Path
from typing import Annotated

import typer

from tidegate import __version__
from tidegate.cli.buffer import buffer_app
from tidegate.cli.devices import devices
from tidegate.cli.rules import rules_app
from tidegate.cli.service import register as register_service_commands
from tidegate.config.loader import json_schema, load_config, resolve_config_path
from tidegate.config.schema import GatewayConfig, MqttSection
from tidegate.demo.local_broker import LocalBroker, find_mosquitto
from tidegate.demo.watch import WatchCounts, watch
from tidegate.errors import ConfigError, TidegateError
from tidegate.ops.control import ControlServer
from tidegate.ops.log_limit import install_rate_limit
from tidegate.ops.logs import setup_logging
from tidegate.ops.metrics import MetricsReporter, PrometheusEndpoint
from tidegate.ops.reload import ReloadOutcome
from tidegate.ops.sdnotify import Notifier
from tidegate.ops.status import GatewayMonitor
from tidegate.pipeline import Gateway, Snapshot

app = typer.Typer(
    name="tidegate",
    help="IoT edge event gateway: sensors in, YAML rules, a durable outbox, MQTT out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(rules_app, name="rules")
app.add_typer(buffer_app, name="buffer")
app.command("devices")(devices)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file. Default: $TIDEGATE_CONFIG, else /etc/tidegate/tidegate.yaml.",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tidegate {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """tidegate: the edge gateway that keeps every event it accepted."""


# -- check ------------------------------------------------------------------------


@app.command()
def check(
    config: ConfigOption = None,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the config's JSON Schema and exit.")
    ] = False,
) -> None:
    """Validate a config file without starting anything."""
    if schema:
        typer.echo(json.dumps(json_schema(), indent=2))
        return
    path = resolve_config_path(config)
    cfg = load_config(path)
    typer.echo(
        f"{path}: ok — gateway '{cfg.gateway.id}', {len(cfg.drivers)} drivers, "
        f"{len(cfg.rules)} rules, "
        + (
            f"broker {cfg.mqtt.host}:{cfg.mqtt.effective_port}"
            if cfg.mqtt
            else "no broker (buffer only)"
        )
    )


# -- run ----------------------------------------------------------------------------


_stop_requested = threading.Event()


def _remember_stop(signum: int, frame: object) -> None:
    _stop_requested.set()


def _catch_stop_signals_early() -> None:
    """A SIGTERM during start-up (config, outbox) must still mean a clean stop."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _remember_stop)
    # A reload asked for while starting is moot (the file is being read now); by
    # default SIGHUP would kill us.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


async def _serve(
    config: GatewayConfig,
    *,
    config_path: Path | None = None,
    duration: float | None = None,
    every_second: Callable[[Snapshot], None] | None = None,
) -> None:
    notifier = Notifier.from_env()
    gateway = Gateway(config, config_path=config_path)
    monitor = GatewayMonitor(gateway)
    control = ControlServer.from_config(
        config.control, monitor, gateway.tap, reload=gateway.reload_rules, notifier=notifier
    )
    prometheus = PrometheusEndpoint.from_config(config.metrics.prometheus, monitor)
    metrics = (
        MetricsReporter.from_config(
            config.metrics, monitor, gateway.publish_unbuffered, config.topic_prefix
        )
        if gateway.publisher is not None
        else None
    )
    stop = asyncio.Event()

    def request_stop() -> None:
        if not stop.is_set():
            notifier.stopping()
            stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    reloads: set[asyncio.Task[ReloadOutcome]] = set()

    def reload() -> None:
        # Through the control server when there is one: it tells systemd RELOADING/READY.
        task = asyncio.ensure_future(control.reload() if control else gateway.reload_rules())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    if _stop_requested.is_set():
        request_stop()
    if duration is not None:
        loop.call_later(duration, request_stop)
    task = asyncio.create_task(gateway.run(stop))
    helpers: list[asyncio.Task[None]] = []
    try:
        # READY=1 only once the outbox is open, the drivers started and the socket listens.
        ready = asyncio.ensure_future(gateway.ready.wait())
        await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not task.done():
            try:
                if control is not None:
                    await control.start()
                if prometheus is not None:
                    await prometheus.start()
            except TidegateError:
                request_stop()
                await asyncio.gather(task, return_exceptions=True)
                raise
            helpers.append(asyncio.create_task(monitor.run(), name="monitor"))
            if metrics is not None:
                helpers.append(asyncio.create_task(metrics.run(), name="metrics"))
            watchdog = notifier.start_watchdog(alive=lambda: not task.done())
            if watchdog is not None:
                helpers.append(watchdog)
            notifier.ready(f"gateway {config.gateway.id} running")
        if every_second is not None:
            while not task.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), 1.0)
                if not task.done() and not stop.is_set():
                    every_second(gateway.snapshot())
        await task
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if control is not None:
            await control.close()
        if prometheus is not None:
            await prometheus.close()
        notifier.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the gateway in the foreground (what the systemd service runs)."""
    _catch_stop_signals_early()
    path = resolve_config_path(config)
    cfg = load_config(path)
    setup_logging(cfg.logging.level or cfg.gateway.log_level)
    install_rate_limit(cfg.logging.rate_limit)
    if cfg.mqtt is None:
        typer.echo("tidegate: no `mqtt:` section; events are only kept in the outbox", err=True)
    asyncio.run(_serve(cfg, config_path=path))


# -- simulate -----------------------------------------------------------------------


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tidegate" / "simulate"


def _load_demo_config() -> GatewayConfig:
    """The shipped demo, read from the installed file so its `rules_dir` resolves."""
    with as_file(files("tidegate.examples").joinpath("simulate.yaml")) as path:
        return load_config(path)


class _StatusLine:
    """Once a second: events in/s, published/s, received/s, outbox depth, broker state."""

    def __init__(self, counts: WatchCounts | None) -> None:
        self.counts = counts
        self.last: Snapshot | None = None
        self.last_received = 0
        self.last_time = time.monotonic()

    def __call__(self, snap: Snapshot) -> None:
        now = time.monotonic()
        dt = max(now - self.last_time, 1e-6)
        prev = self.last
        rate_in = (snap.events_in - prev.events_in) / dt if prev else 0.0
        rate_out = (snap.delivered - prev.delivered) / dt if prev else 0.0
        line = (
            f"in {rate_in:7.0f}/s · published {rate_out:7.0f}/s · "
            f"outbox {snap.depth:6d} · broker {snap.broker}"
        )
        if self.counts is not None:
            received = self.counts.events
            line += f" · received {(received - self.last_received) / dt:7.0f}/s"
            self.last_received = received
        typer.echo(line)
        self.last, self.last_time = snap, now


async def _simulate(cfg: GatewayConfig, duration: float | None, broker: LocalBroker | None) -> None:
    counts: WatchCounts | None = None
    watcher: asyncio.Task[None] | None = None
    if broker is not None:
        counts = WatchCounts()
        watcher = asyncio.create_task(
            watch(broker.host, broker.port, f"{cfg.topic_prefix}/#", counts)
        )
    try:
        await _serve(cfg, duration=duration, every_second=_StatusLine(counts))
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    if counts is not None:
        typer.echo(
            f"the local broker received {counts.events} events in {counts.messages} messages"
        )


@app.command()
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
        typer.Option("--data-dir", help="Where the demo's outbox lives (kept between runs)."),
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
    _catch_stop_signals_early()
    cfg = load_config(config) if config is not None else _load_demo_config()
    state = data_dir or _state_dir()
    cfg = cfg.model_copy(
        update={"gateway": cfg.gateway.model_copy(update={"data_dir": state.resolve()})}
    )
    setup_logging(cfg.logging.level or cfg.gateway.log_level)
    install_rate_limit(cfg.logging.rate_limit)
    local: LocalBroker | None = None
    with contextlib.ExitStack() as stack:
        if cfg.mqtt is None and broker:
            if find_mosquitto() is None:
                typer.echo(
                    "mosquitto is not installed: running without a broker; events are kept in "
                    f"the outbox at {cfg.outbox_path} (install it: sudo apt install mosquitto)",
                    err=True,
                )
            else:
                workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tidegate-")))
                local = stack.enter_context(LocalBroker(workdir))
                cfg = cfg.model_copy(update={"mqtt": MqttSection(host=local.host, port=local.port)})
                typer.echo(f"started a private Mosquitto on {local.host}:{local.port}", err=True)
        elif cfg.mqtt is None:
            typer.echo(f"no broker: events are kept in the outbox at {cfg.outbox_path}", err=True)
        typer.echo(
            f"simulating {len(cfg.drivers)} drivers; outbox {cfg.outbox_path}; Ctrl-C stops",
            err=True,
        )
        asyncio.run(_simulate(cfg, duration, local))


register_service_commands(app)


def main() -> None:
    """Console entry point: our errors become one-line messages and exit codes.

    Usage errors are typer's own (exit 2, with the command's usage line).
    """
    try:
        app()
    except ConfigError as exc:
        for message in exc.messages:
            typer.echo(message, err=True)
        plural = "s" if len(exc.messages) != 1 else ""
        typer.echo(
            f"tidegate: configuration invalid ({len(exc.messages)} problem{plural})", err=True
        )
        sys.exit(exc.exit_code)
    except TidegateError as exc:
        typer.echo(f"tidegate: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
