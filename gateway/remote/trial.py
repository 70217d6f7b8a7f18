"""A whole config version on trial, and the restart that puts it there.

A config version is applied by writing it and restarting the gateway
(``tidegate.remote.whole_config``). Beside the config file, a marker
(``.<config name>.pending``) says which version waits and where its history
is: the next start finds it before it reads the new config, so even a config
that cannot be loaded is rolled back::

    {"history": "/var/lib/tidegate/rules-history", "keep": 5, "version": 7,
     "confirm_within": 60.0, "healthy_for": 5.0}

At start (``begin_trial``, before the config is loaded):

- no marker, or its version is no longer pending: nothing to do;
- the file does not hold the version (the gateway stopped before writing it,
  or someone changed it since): recorded ``rolled_back``, the file left alone;
- a start on it already happened (``starts`` in the record) and did not end
  healthy: a crash, a kill, a crash loop, a stop before confirmation. The
  previous file is put back, the version recorded ``rolled_back``; this start
  runs the previous config;
- else this is its first start: ``starts`` is counted and the trial runs.

During the trial (``Trial.watch``) the gateway has ``confirm_within`` from its
start to be healthy (every uplink connected, every driver running) for
``healthy_for`` in a row, or at the deadline: ``confirmed``. Otherwise the
previous file is put back, ``rolled_back`` recorded, and the gateway restarts
again. A gateway that fails to start on it (``tidegate.cli.launch``) rolls it
back itself before it exits and restarts.

The restart (``Restart.now``): under systemd (``$NOTIFY_SOCKET`` was set) an
exit with ``RESTART_EXIT`` (75), which the unit restarts on
(``RestartForceExitStatus=75``); in the foreground, the same command line
again in this process (``os.execv``: same pid, same terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

from tidegate.remote.history import History, HistoryError, Version, sha256, write_atomically

log = logging.getLogger(__name__)

RESTART_EXIT = 75
"""EX_TEMPFAIL: "start me again", what the systemd unit restarts on."""
POLL = 0.25


@dataclass(frozen=True, slots=True)
class Marker:
    history: str
    keep: int
    version: int
    confirm_within: float
    healthy_for: float


def marker_path(config_path: Path) -> Path:
    return config_path.with_name(f".{config_path.name}.pending")


def write_marker(config_path: Path, marker: Marker) -> None:
    write_atomically(marker_path(config_path), json.dumps(asdict(marker)).encode() + b"\n")


def remove_marker(config_path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        marker_path(config_path).unlink()


def read_marker(config_path: Path) -> Marker | None:
    path = marker_path(config_path)
    try:
        doc = json.loads(path.read_bytes())
        return Marker(
            str(doc["history"]),
            int(doc["keep"]),
            int(doc["version"]),
            float(doc["confirm_within"]),
            float(doc["healthy_for"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("ignoring %s: it cannot be read (%s)", path, exc)
        return None


class Restart:
    """A restart asked for while the gateway runs; done once it has stopped cleanly."""

    def __init__(self, under_systemd: bool) -> None:
        self.under_systemd = under_systemd
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason

    def now(self) -> NoReturn:
        for handler in logging.getLogger().handlers:
            handler.flush()
        if self.under_systemd:
            log.warning("restarting (%s): exiting with %d", self.reason, RESTART_EXIT)
            sys.stderr.flush()
            sys.exit(RESTART_EXIT)
        log.warning("restarting (%s): running the same command again", self.reason)
        sys.stdout.flush()
        sys.stderr.flush()
        argv = [sys.executable, *sys.orig_argv[1:]]
        os.execv(sys.executable, argv)  # noqa: S606 - this very command line, again


def restore(config_path: Path, history: History, version: Version, reason: str) -> Version:
    """Put back the file ``version`` replaced, record it ``rolled_back``, drop the marker."""
    if version.previous is not None:
        write_atomically(config_path, history.text(version.previous))
    marked = history.mark(version, "rolled_back", reason)
    remove_marker(config_path)
    log.warning(
        "config update %d rolled back to version %s: %s", version.version, version.previous, reason
    )
    return marked


class Trial:
    """The first start on a pending config version."""

    def __init__(self, config_path: Path, history: History, version: Version, marker: Marker):
        self.config_path = config_path
        self.history = history
        self.version = version
        self.marker = marker
        self.started = time.monotonic()
        self.outcome: Version | None = None

    @property
    def settled(self) -> bool:
        return self.outcome is not None

    def confirm(self) -> Version:
        self.outcome = self.history.mark(self.version, "confirmed")
        remove_marker(self.config_path)
        log.info("config update %d confirmed", self.version.version)
        return self.outcome

    def roll_back(self, reason: str) -> Version:
        self.outcome = restore(self.config_path, self.history, self.version, reason)
        return self.outcome

    async def watch(self, health: Callable[[], str | None]) -> Version:
        """Confirm once healthy long enough, or roll back at the deadline."""
        marker = self.marker
        deadline = self.started + marker.confirm_within
        healthy_since: float | None = None
        while True:
            problem = health()
            now = time.monotonic()
            if problem is None:
                healthy_since = now if healthy_since is None else healthy_since
                if now - healthy_since >= marker.healthy_for or now >= deadline:
                    return await asyncio.to_thread(self.confirm)
            else:
                healthy_since = None
                if now >= deadline:
                    reason = f"not healthy within {marker.confirm_within:g} s: {problem}"
                    return await asyncio.to_thread(self.roll_back, reason)
            await asyncio.sleep(max(0.0, min(POLL, deadline - now)))


def begin_trial(config_path: Path) -> Trial | None:
    """At start, before the config is loaded: the trial of a pending version, if one
    runs now; a pending version that already had its start is rolled back here."""
    marker = read_marker(config_path)
    if marker is None:
        return None
    history = History(Path(marker.history), marker.keep, "config")
    try:
        version = history.get(marker.version)
        if version is None or not version.pending:
            remove_marker(config_path)
            return None
        try:
            held = sha256(config_path.read_bytes())
        except OSError:
            held = ""
        if held != version.sha256:
            history.mark(
                version,
                "rolled_back",
                "the config file does not hold this version (the gateway stopped before "
                "writing it, or the file was changed since)",
            )
            remove_marker(config_path)
            return None
        if version.starts >= 1:
            restore(
                config_path,
                history,
                version,
                f"the gateway stopped before it was healthy on it (start {version.starts})",
            )
            return None
        counted = Version(**{**version.to_json(), "starts": version.starts + 1})
        history.save(counted)
    except HistoryError as exc:
        log.error("config update %d: %s", marker.version, exc)
        return None
    log.warning(
        "config update %d: on trial; healthy within %g s or rolled back",
        version.version,
        marker.confirm_within,
    )
    return Trial(config_path, history, counted, marker)
