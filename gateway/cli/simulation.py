"""`tidegate simulate`: simulated sensors → rules → outbox → a private local broker.

What `tidegate simulate` runs: the shipped demo config (or the user's), its
outbox in a state folder of its own (the demo's, or one per config below it),
a private Mosquitto in place of the config's `mqtt:` broker, a status line a
second, and a count of what reached the broker. A config written for the
device (a cloud broker with a systemd credential, a data_dir only root may
write) so runs on a laptop as it is, once its devices are switched to `sim`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sys
import tempfile
import time
from importlib.resources import as_file, files
from pathlib import Path
from typing import TypeVar, overload

import typer

from tidegate.cli.serve import serve
from tidegate.config.loader import load_config
from tidegate.config.schema import GatewayConfig, MqttSection
from tidegate.demo.local_broker import LocalBroker, find_mosquitto
from tidegate.demo.state import demo_data_dir, simulated_dir
from tidegate.demo.watch import WatchCounts, watch
from tidegate.errors import BufferError_, TidegateError
from tidegate.mqtt.connection import MqttConnection
from tidegate.ops.control_socket import data_dir_socket, locate_socket
from tidegate.ops.log_limit import install_rate_limit
from tidegate.ops.logs import setup_logging
from tidegate.outbox.lock import unless_running
from tidegate.pipeline import Snapshot
from tidegate.wording import count


def load_demo_config() -> GatewayConfig:
    """The shipped demo, read from the installed file so its `rules_dir` resolves."""
    with as_file(files("tidegate.examples").joinpath("simulate.yaml")) as path:
        return load_config(path)


class StatusLine:
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
            watch(
                broker.host,
                broker.port,
                f"{cfg.topic_prefix}/#",
                counts,
                status_topic=f"{cfg.topic_prefix}/status",
            )
        )
    try:
        await serve(cfg, duration=duration, every_second=StatusLine(counts))
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    if counts is not None:
        status = f", and {count(counts.status, 'status message')}" if counts.status else ""
        typer.echo(
            f"the local broker received {count(counts.events, 'event')} in "
            f"{count(counts.messages, 'message')}{status}"
        )


def _program() -> str:
    """``tidegate`` as the user can type it: the bare name when PATH finds this one."""
    invoked = Path(sys.argv[0])
    if invoked.name != "tidegate":  # python -m tidegate
        return "tidegate"
    found = shutil.which("tidegate")
    if found is not None and Path(found).resolve() == invoked.resolve():
        return "tidegate"
    return str(invoked)


def how_to_reach(cfg: GatewayConfig) -> str:
    """The commands that reach this gateway, and its outbox, from another terminal."""
    program = _program()
    outbox = f"{program} buffer peek --db {cfg.outbox_path}"
    if not cfg.control.enabled:
        return f"the control API is off (control.enabled: false); its outbox: {outbox}"
    socket = cfg.control.socket or data_dir_socket(cfg.gateway.data_dir)
    try:
        found_by_default = locate_socket(None, None).path.resolve() == socket.resolve()
    except TidegateError:
        found_by_default = False
    where = "" if found_by_default else f" --socket {socket}"
    return f"from another terminal: {program} status{where} · {program} tail{where} · {outbox}"


def state_dir(config: Path, cfg: GatewayConfig) -> Path:
    """A config's own folder below the demo's: named after its gateway id when the file
    gives one (the default id, the host name, would be the same for every file), else
    after the file."""
    return simulated_dir(config, cfg.gateway.id if "id" in cfg.gateway.model_fields_set else None)


def on_a_laptop(cfg: GatewayConfig, data_dir: Path) -> GatewayConfig:
    """``cfg`` with its outbox (and so its control socket) in ``data_dir``: a device's
    ``/var/lib/tidegate`` is not the laptop user's to write, nor is its outbox."""
    gateway = cfg.gateway.model_copy(update={"data_dir": data_dir.resolve()})
    return cfg.model_copy(
        update={"gateway": gateway, "buffer": cfg.buffer.model_copy(update={"path": None})}
    )


M = TypeVar("M", bound=MqttSection)


@overload
def private_uplink(mqtt: M, broker: LocalBroker) -> M: ...
@overload
def private_uplink(mqtt: None, broker: LocalBroker) -> MqttSection: ...
def private_uplink(mqtt: MqttSection | None, broker: LocalBroker) -> MqttSection:
    """The config's publishing settings (topics, batching, QoS; an uplink's name) sent to
    ``broker``; its connection (host, TLS, user and password, client id, a cloud's
    ``preset``) is the device's, not the laptop's."""
    kind = MqttSection if mqtt is None else type(mqtt)
    kept = (
        {}
        if mqtt is None
        else {
            name: getattr(mqtt, name)
            for name in kind.model_fields
            if name not in MqttConnection.model_fields and name not in ("preset", "azure")
        }
    )
    return kind(host=broker.host, port=broker.port, **kept)


DEVICE_KEYS = ("port", "path", "bus")
"""The keys that name a device file (serial, modbus, onewire, i2c) and take ``sim``."""


def missing_devices(config: Path, cfg: GatewayConfig) -> list[str]:
    """One line per driver whose device is not on this machine: the line of ``config``
    to switch to ``sim`` (said once, before the driver's own reconnect warnings)."""
    try:
        lines = config.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    said = []
    for driver in cfg.drivers:
        for key in DEVICE_KEYS:
            value = getattr(driver, key, None)
            if key == "bus" and isinstance(value, int) and not isinstance(value, bool):
                device = Path(f"/dev/i2c-{value}")
            elif isinstance(value, str) and value.startswith("/"):
                device = Path(value)
            else:
                continue
            if device.exists():
                continue
            written = re.compile(rf"\s*(- )?{key}:\s*['\"]?{re.escape(str(value))}\b")
            at = next((n for n, line in enumerate(lines, 1) if written.match(line)), None)
            where = f"{config}:{at}" if at is not None else f"{config}, driver '{driver.name}'"
            change = "change it to" if at is not None else "add"
            said.append(
                f"{driver.name}: {key} {device} is not on this machine; to simulate it, "
                f"{change} `{key}: sim` ({where})"
            )
    return said


def refuse_if_in_use(cfg: GatewayConfig) -> None:
    """Said before a broker starts and the banner promises a running gateway."""
    with unless_running(cfg.outbox_path) as free:
        if not free:
            raise BufferError_(
                f"another tidegate is using the outbox {cfg.outbox_path}; stop it first, "
                "or give this one its own folder: --data-dir DIR"
            )


def simulate(
    config: Path | None, data_dir: Path | None, duration: float | None, broker: bool
) -> None:
    """Run the demo (or ``config``) with its outbox in ``data_dir`` until stopped."""
    cfg = load_config(config) if config is not None else load_demo_config()
    if data_dir is None:
        data_dir = demo_data_dir() if config is None else state_dir(config, cfg)
    cfg = on_a_laptop(cfg, data_dir)
    refuse_if_in_use(cfg)
    setup_logging(cfg.logging.level or cfg.gateway.log_level)
    install_rate_limit(cfg.logging.rate_limit)
    local: LocalBroker | None = None
    with contextlib.ExitStack() as stack:
        if broker and find_mosquitto() is None:
            typer.echo(
                "mosquitto is not installed: running without a broker; events are kept in "
                f"the outbox at {cfg.outbox_path} (install it: sudo apt install mosquitto)",
                err=True,
            )
            cfg = cfg.model_copy(update={"mqtt": None, "uplinks": []})
        elif broker:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tidegate-")))
            local = stack.enter_context(LocalBroker(workdir))
            hosts = sorted({u.host for u in cfg.all_uplinks()})
            instead = (
                f" in place of the config's broker {', '.join(hosts)} (--no-broker keeps it)"
                if hosts
                else ""
            )
            cfg = cfg.model_copy(
                update={"mqtt": private_uplink(cfg.mqtt, local)}
                if not cfg.uplinks
                else {"uplinks": [private_uplink(u, local) for u in cfg.uplinks]}
            )
            typer.echo(
                f"started a private Mosquitto on {local.host}:{local.port}{instead}", err=True
            )
        elif not cfg.all_uplinks():
            typer.echo(f"no broker: events are kept in the outbox at {cfg.outbox_path}", err=True)
        typer.echo(
            f"simulating {count(len(cfg.drivers), 'driver')}; outbox {cfg.outbox_path}; "
            "Ctrl-C stops",
            err=True,
        )
        typer.echo(how_to_reach(cfg), err=True)
        for line in missing_devices(config, cfg) if config is not None else []:
            typer.echo(line, err=True)
        asyncio.run(_simulate(cfg, duration, local))
