"""What `tidegate config push --whole` and `rollback` of a config version do, apart
from the typer app.

The gateway answers ``applied`` (or ``refused``) and restarts, which ends the
connection; with ``--wait`` the end is read from the history files, where the
restarted gateway records it (``confirmed`` or ``rolled_back``). With no
gateway running, a roll-back validates the version as ``tidegate check``
would and writes it for the next start.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from tidegate.ops.control_client import ControlClient
from tidegate.remote.history import History, Version, sha256, write_atomically
from tidegate.remote.offline import RulesRefused, Say, Target, UpdateFailed
from tidegate.remote.trial import remove_marker
from tidegate.remote.update import UpdateOutcome
from tidegate.remote.whole_config import check_config_text

RESTART_ALLOWANCE = 240.0
"""Seconds a restart may take besides ``confirm_within`` (systemd's RestartSec=, a slow
start, the TimeoutStartSec= of a start that hangs)."""
POLL = 0.1


def send_config(
    client: ControlClient,
    request: dict[str, Any],
    say: Say,
    warn: Say,
    *,
    wait_in: Target | None,
) -> UpdateOutcome:
    """Send ``config_update`` / ``config_rollback``; print what happens; raise unless it
    was applied (and, with ``wait_in``, confirmed after the restart)."""
    lines: Generator[dict[str, Any], None, None] = client.replies(request, idle_timeout=None)
    outcome = UpdateOutcome.from_json(next(lines)["update"])
    lines.close()  # nothing follows: the gateway restarts and hangs up
    if not outcome.accepted:
        for detail in outcome.details:
            warn(detail)
        if outcome.details:
            raise RulesRefused(outcome.summary)
        raise UpdateFailed(f"update refused: {outcome.summary}")
    say(outcome.summary)
    if wait_in is None or outcome.version is None:
        return outcome
    settled = await_config(wait_in.configs, outcome.version, wait_in.section.confirm_within)
    if settled.outcome != "confirmed":
        raise UpdateFailed(UpdateOutcome.of(settled).summary)
    say(UpdateOutcome.of(settled).summary)
    return UpdateOutcome.of(settled)


def await_config(history: History, version: int, confirm_within: float) -> Version:
    """The record of ``version`` once the restarted gateway settled it."""
    deadline = time.monotonic() + confirm_within + RESTART_ALLOWANCE
    while True:
        found = history.get(version)
        if found is not None and not found.pending:
            return found
        if time.monotonic() > deadline:
            raise UpdateFailed(
                f"version {version} was neither confirmed nor rolled back in time; "
                "see `tidegate config history`"
            )
        time.sleep(POLL)


def rollback_config_offline(target: Target, version: Version) -> Version:
    """With no gateway running: validate the config version as `tidegate check` would,
    write it (a pending config version is rolled back first); recorded ``confirmed``,
    origin ``rollback``; the gateway starts on it."""
    history, path = target.configs, target.path
    data = history.text(version.version)
    check_config_text(path, data.decode(), target.config)  # ConfigError: exit 2, positioned
    pending = history.pending()
    if pending is not None:
        history.mark(pending, "rolled_back", "rolled back by `tidegate config rollback`")
        remove_marker(path)
    before = path.read_bytes()
    current = history.current()
    if current is None or current.sha256 != sha256(before):
        current = history.add(before, origin="local", outcome="confirmed")
    added = history.add(
        data,
        origin="rollback",
        outcome="confirmed",
        reason="restored while no gateway ran; it starts on it",
        previous=current.version,
        restores=version.version,
    )
    write_atomically(path, data)
    return added
