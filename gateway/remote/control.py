"""The control socket's requests for remote rules updates (``tidegate config push|rollback``).

Served by ``tidegate.ops.control_server`` (see there for the framing)::

    {"v": 1, "op": "rules_update", "text": "- name: …\\n", "origin": "cli", "wait": true}
    {"v": 1, "op": "rules_rollback", "version": 3, "wait": false}
    {"v": 1, "op": "rules_history"}

An update or roll-back answers ``{"ok": true, "update": OUTCOME}`` at once
(``applied`` or ``refused``, see ``UpdateOutcome.to_json``) and, with
``wait`` and an accepted update, ``{"settled": OUTCOME}`` once it is
confirmed or rolled back. ``rules_history`` answers ``{"ok": true,
"history": [RECORD, …]}``, oldest first (``tidegate.remote.history``).

A whole config (``tidegate.remote.whole_config``), with a restart::

    {"v": 1, "op": "config_update", "text": "gateway: …\n", "origin": "cli"}
    {"v": 1, "op": "config_rollback", "version": 4}

answer ``{"ok": true, "update": OUTCOME}``; an accepted one then restarts the
gateway, which closes the connection: the client reads the end from the
history (``tidegate.remote.offline.await_config``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tidegate.ops.control_server import Request
from tidegate.remote.update import RulesUpdater, UpdateOutcome
from tidegate.remote.whole_config import ConfigUpdater


def remote_requests(updater: RulesUpdater) -> dict[str, Request]:
    async def update(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        text, origin = request.get("text"), request.get("origin", "cli")
        if not isinstance(text, str) or not isinstance(origin, str):
            yield {"ok": False, "error": "'text' (the rule file) and 'origin' are strings"}
            return
        outcome = await updater.apply(text, origin=origin)
        async for line in _answer(updater, outcome, request):
            yield line

    async def rollback(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        version = request.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            yield {"ok": False, "error": "'version' is a version number"}
            return
        outcome = await updater.rollback(version)
        async for line in _answer(updater, outcome, request):
            yield line

    async def history(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        if updater.history is None:
            yield {"ok": True, "history": []}
            return
        yield {"ok": True, "history": [v.to_json() for v in updater.history.versions()]}

    return {"rules_update": update, "rules_rollback": rollback, "rules_history": history}


def config_requests(updater: ConfigUpdater) -> dict[str, Request]:
    async def update(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        text, origin = request.get("text"), request.get("origin", "cli")
        if not isinstance(text, str) or not isinstance(origin, str):
            yield {"ok": False, "error": "'text' (the config file) and 'origin' are strings"}
            return
        outcome = await updater.apply(text, origin=origin)
        yield {"ok": True, "update": outcome.to_json()}
        updater.restart_now()  # once the answer is out

    async def rollback(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        version = request.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            yield {"ok": False, "error": "'version' is a version number"}
            return
        outcome = await updater.rollback(version)
        yield {"ok": True, "update": outcome.to_json()}
        updater.restart_now()

    return {"config_update": update, "config_rollback": rollback}


async def _answer(
    updater: RulesUpdater, outcome: UpdateOutcome, request: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    yield {"ok": True, "update": outcome.to_json()}
    if request.get("wait") is True and outcome.version is not None and not outcome.final:
        settled = await updater.settled(outcome.version)
        yield {"settled": settled.to_json()}
