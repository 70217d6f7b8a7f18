"""What `tidegate config history|rollback|push` do, apart from the typer app.

The history is read from the files alone, so it works without a gateway.
A roll-back goes through a running gateway's control socket (it validates,
reloads and confirms like any update); with no gateway running, the version
is validated here and written, and the gateway loads it at its next start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tidegate.config.remote_rules import RemoteRulesSection
from tidegate.config.schema import GatewayConfig
from tidegate.errors import TidegateError
from tidegate.ops.control_client import MAX_LINE, ControlClient, encode_line
from tidegate.remote.history import History, Version, history_dir, sha256, write_atomically
from tidegate.remote.update import NO_SECTION, UpdateOutcome, earlier
from tidegate.remote.validate import check_rule_text

Say = Callable[[str], None]


class RemoteUsageError(TidegateError):
    """A version that does not exist, a config without ``remote_rules:``, a file too long."""

    exit_code = 2


class RulesRefused(TidegateError):
    """The gateway refused the rules as invalid (the messages were printed before)."""

    exit_code = 2


class UpdateFailed(TidegateError):
    """The update was refused for another reason, or rolled back."""


@dataclass(frozen=True, slots=True)
class Target:
    """A gateway's config, as the history commands need it."""

    path: Path
    config: GatewayConfig
    section: RemoteRulesSection
    history: History
    configs: History
    """The whole config's versions, in the same folder."""


def load_target(config_path: Path) -> Target:
    from tidegate.config.loader import load_config  # noqa: PLC0415 - the heavy part

    config = load_config(config_path)
    if config.remote_rules is None:
        raise RemoteUsageError(f"{config_path}: {NO_SECTION}")
    section = config.remote_rules
    folder = history_dir(config.outbox_path)
    return Target(
        config_path,
        config,
        section,
        History(folder, section.keep),
        History(folder, section.keep, "config"),
    )


def history_table(target: Target) -> list[str]:
    """One line per kept version of either kind, oldest first, the current one of each
    kind marked ``*``."""
    versions = target.history.everything()
    if not versions:
        return [f"no versions yet (in {target.history.folder})"]
    current = {
        v.version for v in (target.history.current(), target.configs.current()) if v is not None
    }
    rows = [("version", "kind", "time", "origin", "outcome", "sha256", "reason")]
    for v in versions:
        mark = "*" if v.version in current else " "
        origin = v.origin if v.restores is None else f"{v.origin} of {v.restores}"
        reason = (v.reason or "").splitlines()
        rows.append(
            (
                f"{mark}{v.version}",
                v.kind,
                v.time,
                origin,
                v.outcome,
                v.sha256[:12],
                reason[0] if reason else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:6], widths, strict=True))
        + (f"  {row[6]}" if row[6] else "")
        for row in rows
    ]


def rollback_target(history: History, version: int | None) -> Version:
    """The version a roll-back restores (a config version when VERSION is one; without
    VERSION, the rules'); a usage error (exit 2) when there is none."""
    found = (
        earlier(history)
        if version is None
        else next((v for v in history.everything() if v.version == version), None)
    )
    if found is None:
        if version is not None:
            have = ", ".join(str(v.version) for v in history.everything()) or "none"
            raise RemoteUsageError(f"there is no version {version} (kept: {have})")
        raise RemoteUsageError("there is no earlier confirmed version to roll back to")
    return found


def rollback_offline(target: Target, version: Version) -> Version:
    """With no gateway running: validate the version's text as the rule file, then write
    it (a pending update is rolled back first); recorded ``confirmed``, origin ``rollback``."""
    history, file = target.history, target.section.file
    data = history.text(version.version)
    text = data.decode()
    uplinks = [u.name for u in target.config.all_uplinks()]
    check_rule_text(target.path, file, text, uplinks)  # ConfigError: exit 2, positioned
    pending = history.pending()
    if pending is not None:
        history.mark(pending, "rolled_back", "rolled back by `tidegate config rollback`")
    try:
        before = file.read_bytes()
    except FileNotFoundError:
        before = b""
    current = history.current()
    if current is None or current.sha256 != sha256(before):
        current = history.add(before, origin="local", outcome="confirmed")
    reason = "restored while no gateway ran; it loads it at its next start"
    added = history.add(
        data,
        origin="rollback",
        outcome="confirmed",
        reason=reason,
        previous=None if current is None else current.version,
        restores=version.version,
    )
    write_atomically(file, data)
    return added


def request_line_fits(request: dict[str, Any]) -> None:
    size = len(encode_line({"v": 1, **request}))
    if size > MAX_LINE:
        raise RemoteUsageError(
            f"the file is too long to push ({size} bytes as a request; at most {MAX_LINE})"
        )


def send_update(
    client: ControlClient, request: dict[str, Any], say: Say, warn: Say
) -> UpdateOutcome:
    """Send ``rules_update`` / ``rules_rollback``; print what happens; raise unless it
    was applied (and, with ``wait``, confirmed)."""
    lines: Iterator[dict[str, Any]] = client.replies(request, idle_timeout=None)
    first = next(lines)  # replies() raises when there is none, or a refusal
    outcome = UpdateOutcome.from_json(first["update"])
    if not outcome.accepted:
        for detail in outcome.details:
            warn(detail)
        if outcome.details:
            raise RulesRefused(outcome.summary)
        raise UpdateFailed(f"update refused: {outcome.summary}")
    say(outcome.summary)
    if request.get("wait") is not True:
        return outcome
    for line in lines:
        if "settled" in line:
            settled = UpdateOutcome.from_json(line["settled"])
            if settled.state != "confirmed":
                raise UpdateFailed(settled.summary)
            say(settled.summary)
            return settled
    raise UpdateFailed(
        f"the gateway stopped before version {outcome.version} was confirmed; "
        "it is rolled back at its next start"
    )


def json_history(target: Target) -> str:
    return orjson.dumps([v.to_json() for v in target.history.everything()]).decode()
