"""The ``config_update`` built-in: a whole config file, applied with a restart.

``args: {config: "<the YAML text>"}``. Refused (``bad_arguments`` with the
``NAME:LINE:COL`` messages in ``details``, ``busy``, ``unknown_command`` when
the gateway takes none) before anything changes; otherwise ``accepted``
(``result: {version: N}``) is published and the row of the audit set to
``restarting`` before the gateway restarts on the new file. The process that
restarted cannot send the final result; the restarted one does
(``finish_restarted``): once the version is confirmed or rolled back it sets the
row ``done`` or ``failed`` and publishes that result, where ``accepted`` went
(the MQTT 5 response topic with its correlation data, or ``<topic>/result/<id>``),
as soon as that uplink is connected. A repeated id is answered from the row, so
the cloud can ask again after a restart. A command in a platform's own
convention gets its final result in the audit only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tidegate.commands.answer import Answer, correlation_property
from tidegate.commands.audit import CommandAudit
from tidegate.commands.message import Command, CommandRefused, result_doc

if TYPE_CHECKING:
    from tidegate.remote.history import History, Version
    from tidegate.remote.whole_config import ConfigUpdater

log = logging.getLogger(__name__)

Reply = Callable[[str, bytes, bytes], bool]
RETRY = 0.25
"""How often a result waiting for its uplink is tried again."""
NONE = (
    "this gateway takes no whole-config updates (`remote_rules: {whole_config: true}` in its "
    "config)"
)


async def run_config_update(
    updater: ConfigUpdater | None, command: Command, answer: Answer, audit: CommandAudit
) -> None:
    """The built-in, from its checks to the restart."""
    from tidegate.remote.update import BUSY  # noqa: PLC0415 - with the updater

    if updater is None:
        raise CommandRefused(NONE, reason="unknown_command")
    text = command.args.get("config")
    if not isinstance(text, str):
        raise CommandRefused("`args.config` must be the config file's text", reason="bad_arguments")
    outcome = await updater.apply(text, origin=f"command:{command.id}", reply=answer.route(command))
    if not outcome.accepted:
        if outcome.summary.startswith(BUSY):
            reason = "busy"
        elif outcome.details:
            reason = "bad_arguments"
        else:
            reason = "unknown_command" if outcome.summary == NONE else "failed"
        status = "failed" if reason == "failed" else "refused"
        await answer.final(
            command,
            status,
            reason=None if status == "failed" else reason,
            message=outcome.summary,
            details=list(outcome.details) or None,
        )
        return
    fields: dict[str, Any] = {"result": {"version": outcome.version}, "message": outcome.summary}
    await answer.step(command, "accepted", **fields)
    if answer.seq is not None:
        doc = result_doc(command, "accepted", **fields)
        # Synced: the process that restarts finishes this row (a power cut included).
        await audit.update(answer.seq, "restarting", None, json.dumps(doc).encode(), synced=True)
    updater.restart_now()


def _final(version: Version) -> tuple[str, str]:
    reason = (version.reason or "").splitlines()
    if version.outcome == "confirmed":
        return "done", f"version {version.version} confirmed"
    return "failed", f"version {version.version} rolled back: {reason[0] if reason else ''}"


async def finish_restarted(
    history: History, audit: CommandAudit, links: Mapping[str, Reply | None]
) -> int:
    """Finish the rows of ``config_update`` commands whose version is settled: ``done``
    or ``failed`` in the audit, then published once their uplink is connected (this
    waits for that; cancel it at shutdown). How many rows it finished."""
    finished = 0
    for version in history.versions():
        reply = version.reply
        if reply is None or version.outcome not in ("confirmed", "rolled_back"):
            continue
        seq = reply.get("seq")
        row = await audit.get(seq) if isinstance(seq, int) else None
        if row is None or row.command != "config_update" or row.status in ("done", "failed"):
            continue
        status, message = _final(version)
        ident = json.loads(row.message).get("id") if row.message else None
        doc = {
            "id": ident,
            "command": row.command,
            "status": status,
            "result": {"version": version.version},
            "message": message,
        }
        payload = json.dumps(doc, separators=(",", ":")).encode()
        await audit.update(row.seq, status, None, payload)
        finished += 1
        log.info("command config_update %s: %s (after the restart)", ident, status)
        send = links.get(str(reply.get("uplink")))
        topic = reply.get("topic")
        if send is None or not isinstance(topic, str):
            continue
        hexed = reply.get("correlation")
        correlation = bytes.fromhex(hexed) if isinstance(hexed, str) else None
        sent = False
        while not sent:  # the uplink connects after the start: published once it is
            sent = send(topic, payload, correlation_property(correlation))
            if not sent:
                await asyncio.sleep(RETRY)
    return finished
