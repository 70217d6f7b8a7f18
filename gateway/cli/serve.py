"""Serving a gateway in this process: what `tidegate run` and `simulate` share.

The pipeline, the control socket, metrics, the Prometheus endpoint and
systemd notifications, started in order and stopped in reverse. Heavy: only
the commands that run a gateway import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from tidegate.cli.launch import stop_requested
from tidegate.config.schema import GatewayConfig
from tidegate.errors import TidegateError
from tidegate.ops.control_server import ControlServer
from tidegate.ops.metrics import MetricsReporter, PrometheusEndpoint
from tidegate.ops.reload import ReloadOutcome
from tidegate.ops.sdnotify import Notifier
from tidegate.ops.status import GatewayMonitor
from tidegate.pipeline import Gateway, Snapshot
from tidegate.remote.control import config_requests, remote_requests
from tidegate.remote.startup import recover_pending
from tidegate.remote.trial import Restart, Trial
from tidegate.remote.whole_config import ConfigUpdater

log = logging.getLogger(__name__)


async def serve(
    config: GatewayConfig,
    *,
    config_path: Path | None = None,
    duration: float | None = None,
    every_second: Callable[[Snapshot], None] | None = None,
    restart: Restart | None = None,
    trial: Trial | None = None,
) -> None:
    """Run a gateway until SIGTERM/SIGINT (or ``duration``); SIGHUP reloads its rules.

    With ``restart`` the gateway takes whole config updates: one stops it and asks
    ``restart`` (the caller restarts the process); ``trial`` is a config version on
    trial in this start (``tidegate.remote.trial``).
    """
    notifier = Notifier.from_env()
    config = recover_pending(config, config_path)
    gateway = Gateway(config, config_path=config_path)
    stop = asyncio.Event()

    def request_stop() -> None:
        if not stop.is_set():
            notifier.stopping()
            stop.set()

    def request_restart(reason: str) -> None:
        assert restart is not None
        restart.request(reason)
        request_stop()

    whole = ConfigUpdater(
        config,
        config_path=config_path,
        rules=gateway.remote_rules,
        restart=None if restart is None else request_restart,
        trial=trial,
    )
    if gateway.commands is not None:
        gateway.commands.config_update = whole
    monitor = GatewayMonitor(gateway)
    control = ControlServer.from_config(
        config.control,
        config.gateway.data_dir,
        monitor,
        gateway.tap,
        reload=gateway.reload_rules,
        notifier=notifier,
        requests=remote_requests(gateway.remote_rules) | config_requests(whole),
    )
    prometheus = PrometheusEndpoint.from_config(config.metrics.prometheus, monitor)
    metrics = (
        MetricsReporter.from_config(
            config.metrics, monitor, gateway.publish_unbuffered, config.topic_prefix
        )
        if gateway.publisher is not None
        else None
    )
    loop = asyncio.get_running_loop()
    def stop_by_signal() -> None:
        if restart is not None:
            # A stop asked for is a stop, even during a restart's shutdown: a config
            # version written is on trial at the next start, whenever that is.
            restart.reason = None
        request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_by_signal)
    reloads: set[asyncio.Task[ReloadOutcome]] = set()

    def reload() -> None:
        # Through the control server when there is one: it tells systemd RELOADING/READY.
        task = asyncio.ensure_future(control.reload() if control else gateway.reload_rules())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    if stop_requested.is_set():
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
            helpers.append(
                asyncio.create_task(
                    _after_start(gateway, whole, trial, request_restart), name="config-trial"
                )
            )
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


async def _after_start(
    gateway: Gateway,
    whole: ConfigUpdater,
    trial: Trial | None,
    request_restart: Callable[[str], None],
) -> None:
    """The trial of a config version (rolled back: restart again), then the final
    results of the ``config_update`` commands that restarted the gateway."""
    try:
        if trial is not None:
            settled = await trial.watch(gateway.health)
            if settled.outcome == "rolled_back":
                request_restart(f"config update {settled.version} rolled back")
                return
        if whole.history is not None and gateway.commands is not None:
            from tidegate.commands.config_update import finish_restarted  # noqa: PLC0415

            links = {
                p.name: None if p.commands is None else p.commands.reply for p in gateway.publishers
            }
            await finish_restarted(whole.history, gateway.commands.audit, links)
    except TidegateError as exc:
        log.error("config update: %s", exc)
