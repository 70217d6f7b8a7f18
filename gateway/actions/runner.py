"""Running actions: the one place rules and commands make devices move.

``ActionRunner.run`` checks a call's arguments, calls the driver that owns the device
(through the small protocols in ``tidegate.actions.targets``), and returns what came of
it: done (with what the device now holds or answered), refused (before anything moved:
bad arguments, an interlock) or failed (the device did not do it). Calls of one action
are taken one at a time, in order. Every call is counted by outcome and becomes an
event (source ``actions``), so the cloud sees what the gateway did.

Rule actions arrive from the rule stage, which cannot wait: ``submit`` queues them
(bounded; one that does not fit is counted as ``dropped_queue_full``) and ``run_queue``,
a task of the gateway's, works through them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tidegate.actions.args import Scalar, check_args
from tidegate.actions.config import ActionConfig, describe
from tidegate.actions.targets import perform
from tidegate.driver import Driver
from tidegate.errors import ActionError, ActionRefused
from tidegate.event import ACTIONS_SOURCE, Event

log = logging.getLogger(__name__)

QUEUE_MAX = 1000
"""Rule actions waiting to run, at most: a burst beyond it is dropped and counted."""

Status = Literal["done", "refused", "failed"]


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What came of one call."""

    status: Status
    result: Scalar | dict[str, Any] | None = None
    """done: what the device now holds or answered."""
    reason: str | None = None
    """refused: ``bad_arguments``, ``interlock``, ``unknown_action``."""
    message: str | None = None
    """refused or failed: one line for people."""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"status": self.status}
        for key in ("result", "reason", "message"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        return doc


@dataclass(slots=True)
class ActionCounters:
    done: int = 0
    failed: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    dropped_queue_full: int = 0
    last: str | None = None
    """The latest call: ``NAME: outcome``, for status."""


class ActionRunner:
    """The declared actions, bound to the drivers that do them."""

    def __init__(
        self,
        actions: Sequence[ActionConfig],
        drivers: Mapping[str, Driver],
        record: Callable[[Sequence[Event]], Awaitable[None]],
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._actions = {a.name: a for a in actions}
        self._drivers = drivers
        self._record = record
        self._wall_clock = wall_clock
        self._locks = {a.name: asyncio.Lock() for a in actions}
        self._queue: asyncio.Queue[tuple[str, dict[str, Any], str]] = asyncio.Queue(QUEUE_MAX)
        self.counters = {a.name: ActionCounters() for a in actions}

    @property
    def names(self) -> list[str]:
        return list(self._actions)

    def config(self, name: str) -> ActionConfig | None:
        return self._actions.get(name)

    async def run(
        self,
        name: str,
        args: Mapping[str, Any],
        *,
        cause: str,
        expired: Callable[[], str | None] = lambda: None,
    ) -> ActionOutcome:
        """Do action ``name`` with ``args``; ``cause`` says who asked (a rule, a command).
        ``expired`` is asked once the action's earlier calls are done: a message there
        refuses this call (``expired``) rather than run it late."""
        action = self._actions.get(name)
        if action is None:
            known = ", ".join(self._actions) or "none declared"
            return ActionOutcome(
                "refused", reason="unknown_action", message=f"no action {name!r} ({known})"
            )
        async with self._locks[name]:
            late = expired()
            if late is not None:
                outcome = ActionOutcome("refused", reason="expired", message=late)
            else:
                outcome = await self._perform(action, args, cause)
        await self._note(action, outcome, cause)
        return outcome

    async def _perform(
        self, action: ActionConfig, args: Mapping[str, Any], cause: str
    ) -> ActionOutcome:
        try:
            checked = check_args(action.name, action.arg_specs(), args)
            result = await perform(action, self._drivers[action.driver], checked, cause=cause)
        except ActionRefused as exc:
            return ActionOutcome("refused", reason=exc.reason, message=str(exc))
        except ActionError as exc:
            return ActionOutcome("failed", message=str(exc))
        except Exception as exc:  # a device library's own error: the call failed, we did not
            log.exception("action %s: unexpected error", action.name)
            return ActionOutcome("failed", message=f"{type(exc).__name__}: {exc}")
        return ActionOutcome("done", result=result)

    async def _note(self, action: ActionConfig, outcome: ActionOutcome, cause: str) -> None:
        counters = self.counters[action.name]
        if outcome.status == "done":
            counters.done += 1
            log.info("action %s done (%s): %r", action.name, cause, outcome.result)
        elif outcome.status == "failed":
            counters.failed += 1
            log.warning("action %s failed (%s): %s", action.name, cause, outcome.message)
        else:
            reason = outcome.reason or "refused"
            counters.refused[reason] = counters.refused.get(reason, 0) + 1
            log.warning("action %s refused (%s): %s", action.name, cause, outcome.message)
        counters.last = f"{outcome.status} ({cause})"
        tags = {"cause": cause}
        if outcome.result is not None:
            tags["result"] = str(outcome.result)
        if outcome.reason is not None:
            tags["reason"] = outcome.reason
        if outcome.message is not None:
            tags["message"] = outcome.message
        event = Event(ACTIONS_SOURCE, action.name, outcome.status, self._wall_clock(), tags=tags)
        await self._record([event])

    # -- rule actions -------------------------------------------------------------------

    def submit(self, name: str, args: dict[str, Any], cause: str) -> None:
        """Queue a call from a rule; the rule stage cannot wait for the device."""
        try:
            self._queue.put_nowait((name, args, cause))
        except asyncio.QueueFull:
            counters = self.counters.get(name)
            if counters is not None:
                counters.dropped_queue_full += 1
            log.warning("action %s dropped: %d calls are waiting already", name, QUEUE_MAX)

    async def run_queue(self) -> None:
        """Work through the rule actions, in order, until cancelled."""
        while True:
            name, args, cause = await self._queue.get()
            await self.run(name, args, cause=cause)

    def status(self) -> dict[str, object]:
        """Per action: what it is and its counts, as plain data for status."""
        return {
            name: {
                "does": describe(action),
                "done": self.counters[name].done,
                "failed": self.counters[name].failed,
                "refused": dict(self.counters[name].refused),
                "dropped_queue_full": self.counters[name].dropped_queue_full,
                "last": self.counters[name].last,
            }
            for name, action in self._actions.items()
        }
