"""Taking a command: the checks in order, the audit, the action, and the answers.

For each message on an uplink's command topic (``heard``):

1. parse it (``bad_request``); find the command under ``allow`` (``unknown_command``);
2. a signed command's signature and ``ts`` (``not_authorised``); until here nothing
   the message claims is trusted, so its id is not taken as its own;
3. a repeated id: the first result again (marked ``repeated``), nothing done twice;
4. recorded in the audit (committed) before anything moves;
5. its deadline (``expired``), the rate limit (``rate_limited``), its arguments
   (``bad_arguments``); then ``accepted`` is published;
6. the action or built-in runs; ``done``, ``refused`` (an interlock) or ``failed`` is
   published and recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tidegate.actions.args import check_args
from tidegate.actions.runner import ActionRunner
from tidegate.commands.answer import Answer
from tidegate.commands.audit import CommandAudit
from tidegate.commands.builtins import ACCEPTS_ITSELF, Builtins
from tidegate.commands.config import CommandSpec, CommandsSection
from tidegate.commands.message import (
    BadCommand,
    Command,
    CommandRefused,
    check_signature,
    parse,
)
from tidegate.commands.native import NativeCommand
from tidegate.commands.rate import RateWindow
from tidegate.errors import ActionRefused, TidegateError
from tidegate.mqtt.credentials import Secret

if TYPE_CHECKING:
    from tidegate.remote.whole_config import ConfigUpdater

log = logging.getLogger(__name__)

Reply = Callable[[str, bytes, bytes], bool]
"""Publish a result on the uplink the command came by: topic, payload, MQTT 5
properties; False while it is not connected (the audit keeps the result)."""


MAX_IN_HAND = 64
"""Commands taken at once, at most (each waits for its device or its audit write)."""


@dataclass(frozen=True, slots=True)
class Inbox:
    """Where commands arrive: an uplink, its command topic, and how to answer on it."""

    uplink: str
    base: str
    """Commands arrive on ``<base>/<name>``; results without a response topic go to
    ``<base>/result/<id>``."""
    reply: Reply

    @property
    def filter(self) -> str:
        return f"{self.base}/+"


@dataclass(slots=True)
class CommandCounters:
    received: int = 0
    done: int = 0
    failed: int = 0
    repeated: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    """Messages dropped unread: more than ``MAX_IN_HAND`` commands were in hand."""
    unanswered: int = 0
    """Results that could not be published (the uplink was down): the audit has them."""


class CommandService:
    """The commands of one gateway, heard on any of its uplinks."""

    def __init__(
        self,
        section: CommandsSection,
        *,
        actions: ActionRunner | None,
        audit: CommandAudit,
        builtins: Builtins,
        key: Secret | None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        clock_trusted: Callable[[], bool] = lambda: True,
    ) -> None:
        self.section = section
        self._allowed: dict[str, CommandSpec] = {c.name: c for c in section.allow}
        self._actions = actions
        self.audit = audit
        self._builtins = builtins
        self._key = key
        self._wall = wall_clock
        self._monotonic = monotonic
        self._clock_trusted = clock_trusted
        self._rates = {
            c.name: RateWindow(c.rate_limit, monotonic) for c in section.allow if c.rate_limit
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._in_hand: set[str] = set()
        """Ids being taken right now: a repeat arriving meanwhile is answered as one."""
        self.counters = CommandCounters()
        self.config_update: ConfigUpdater | None = None
        """Set where the gateway can restart itself (``tidegate.cli.serve``)."""

    # -- the uplinks' side ------------------------------------------------------------

    def heard(
        self, inbox: Inbox, topic: str, payload: bytes, properties: Mapping[int, object]
    ) -> None:
        """A message on ``<inbox.base>/+``: taken in a task of its own."""
        received = self._monotonic()
        if self._closed or self._flooded():
            return
        task = asyncio.get_running_loop().create_task(
            self._guarded(self._take(inbox, topic, payload, properties, received), topic),
            name=f"command:{topic}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _flooded(self) -> bool:
        """Too many commands in hand: the next is dropped unread and counted (one who may
        publish to the command topic must not make the gateway write without end)."""
        if len(self._tasks) < MAX_IN_HAND:
            return False
        self.counters.dropped += 1
        if self.counters.dropped == 1 or self.counters.dropped % 1000 == 0:
            log.warning(
                "commands: %d in hand already; %d dropped unanswered so far",
                MAX_IN_HAND,
                self.counters.dropped,
            )
        return True

    def heard_native(self, inbox: Inbox, call: NativeCommand) -> None:
        """A command in a platform's own convention (read by the uplink's format)."""
        if self._closed or self._flooded():
            return
        where = f"{call.convention}:{call.name}"
        task = asyncio.get_running_loop().create_task(
            self._guarded(self._take_native(inbox, call), where), name=f"command:{where}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, taking: Awaitable[None], where: str) -> None:
        """A command that could not be taken (its audit write failed: a full disk) is
        logged and counted; it is not answered, as nothing about it could be kept."""
        try:
            await taking
        except TidegateError as exc:
            self.counters.failed += 1
            log.error("command on %s not taken: %s", where, exc)
        except Exception:  # a defect costs this command, never the gateway
            self.counters.failed += 1
            log.exception("command on %s not taken: internal error", where)

    async def close(self) -> None:
        """Stop taking commands (at shutdown); one cut short is ``interrupted`` in the audit."""
        self._closed = True  # the uplinks stay up a while yet: what arrives now is ignored
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- taking one ---------------------------------------------------------------------

    async def _take(
        self,
        inbox: Inbox,
        topic: str,
        payload: bytes,
        properties: Mapping[int, object],
        received: float,
    ) -> None:
        self.counters.received += 1
        name = topic[len(inbox.base) + 1 :]
        answer = Answer(self, inbox)
        try:
            command = parse(name, payload, properties, received)
        except BadCommand as exc:
            await answer.refused_untrusted(exc.command, exc)
            return
        spec = self._allowed.get(name)
        try:
            if spec is None:
                known = ", ".join(self._allowed) or "none"
                raise CommandRefused(
                    f"no command {name!r} (this gateway takes: {known})", reason="unknown_command"
                )
            if self.section.signed(spec):
                assert self._key is not None  # the loader reads the key of a signed section
                check_signature(command, self._key.reveal(), self._wall(), self.section.max_skew)
        except CommandRefused as exc:
            await answer.refused_untrusted(command, exc)
            return
        assert command.id is not None  # parse refuses a command without one
        if command.id in self._in_hand:
            await answer.repeat(command, None)
            return
        self._in_hand.add(command.id)
        try:
            await self._run(spec, command, answer)
        finally:
            self._in_hand.discard(command.id)

    async def _take_native(self, inbox: Inbox, call: NativeCommand) -> None:
        self.counters.received += 1
        # Its id, in its platform's space: ids of two conventions never meet.
        ident = f"{call.convention}:{call.id}" if call.id is not None else None
        expires = None if call.expires_in is None else self._monotonic() + call.expires_in
        command = Command(
            call.name,
            {"id": ident, "args": call.args},
            ident,
            dict(call.args),
            expires_monotonic=expires,
        )
        answer = Answer(self, inbox, native=call.reply)
        spec = self._allowed.get(call.name)
        try:
            if spec is None:
                known = ", ".join(self._allowed) or "none"
                raise CommandRefused(
                    f"no command {call.name!r} (this gateway takes: {known})",
                    reason="unknown_command",
                )
            if self.section.signed(spec):
                raise CommandRefused(
                    f"{call.name} must be signed, and a {call.convention} command cannot be: "
                    "declare it `signed: false` to take it this way",
                    reason="not_authorised",
                )
        except CommandRefused as exc:
            await answer.refused_untrusted(command, exc)
            return
        if ident is None:
            command = replace(command, doc={"args": call.args}, id=None)
            await self._checked(spec, command, answer)
            return
        if ident in self._in_hand:
            await answer.repeat(command, None)
            return
        self._in_hand.add(ident)
        try:
            await self._run(spec, command, answer)
        finally:
            self._in_hand.discard(ident)

    async def _run(self, spec: CommandSpec, command: Command, answer: Answer) -> None:
        assert command.id is not None
        first = await self.audit.find(command.id)
        if first is not None and first.command != command.name:
            # Not a repeat: another command's id. Its own answer (audited with the id as
            # claimed: the id stays the first one's), nothing run.
            message = f"id {command.id!r} was used by a {first.command} command already"
            await answer.refused_untrusted(command, CommandRefused(message, reason="bad_request"))
            return
        if first is not None:
            await answer.repeat(command, first)
            return
        unsigned = {k: v for k, v in command.doc.items() if k != "sig"}
        try:
            answer.seq = await self.audit.received(
                command.id, None, command.name, answer.uplink, json.dumps(unsigned)
            )
        except sqlite3.IntegrityError:  # the same id, taken by another uplink just now
            await answer.repeat(command, await self.audit.find(command.id))
            return
        await self._checked(spec, command, answer, recorded=True)

    async def _checked(
        self, spec: CommandSpec, command: Command, answer: Answer, *, recorded: bool = False
    ) -> None:
        """The checks of a command that may act (deadline, rate, arguments), then the act."""
        if not recorded:  # a platform's command without an id: audited, never deduplicated
            answer.seq = await self.audit.received(
                None, None, command.name, answer.uplink, json.dumps(command.doc)
            )
        try:
            self._check_deadline(command)
            rate = self._rates.get(spec.name)
            if rate is not None:
                rate.take(spec.name)
            if spec.action is not None and self._actions is not None:
                action = self._actions.config(spec.action)
                if action is not None:
                    check_args(spec.action, action.arg_specs(), command.args)
        except (CommandRefused, ActionRefused) as exc:
            await answer.final(command, "refused", reason=exc.reason, message=str(exc))
            return
        if spec.name not in ACCEPTS_ITSELF:
            await answer.step(command, "accepted")
        try:
            self._check_deadline(command)  # the audit write may have taken its time
            if spec.action is not None:
                await self._act(spec.action, command, answer)
            else:
                await self._builtin(spec.name, command, answer)
        except CommandRefused as exc:
            await answer.final(command, "refused", reason=exc.reason, message=str(exc))
        except TidegateError as exc:
            await answer.final(command, "failed", message=str(exc))

    def _expiry(self, command: Command) -> str | None:
        try:
            self._check_deadline(command)
        except CommandRefused as exc:
            return str(exc)
        return None

    def _check_deadline(self, command: Command) -> None:
        if command.expires_monotonic is not None and self._monotonic() >= command.expires_monotonic:
            raise CommandRefused("its message expired before it could run", reason="expired")
        if (
            command.deadline is not None
            and self._clock_trusted()
            and self._wall() >= command.deadline
        ):
            late = self._wall() - command.deadline
            raise CommandRefused(f"its deadline passed {late:.1f} s ago", reason="expired")

    async def _act(self, action: str, command: Command, answer: Answer) -> None:
        if self._actions is None:
            raise CommandRefused(f"no action {action!r}", reason="unknown_command")
        outcome = await self._actions.run(
            action,
            command.args,
            cause=f"command {command.name} {command.id}",
            expired=lambda: self._expiry(command),
        )
        await answer.final(
            command,
            outcome.status,
            result=outcome.result,
            reason=outcome.reason,
            message=outcome.message,
        )

    async def _builtin(self, name: str, command: Command, answer: Answer) -> None:
        await self._builtins.run(
            name, command, answer, now=self._wall(), config_update=self.config_update
        )

    def status(self) -> dict[str, Any]:
        c = self.counters
        return {
            "received": c.received,
            "done": c.done,
            "failed": c.failed,
            "repeated": c.repeated,
            "dropped": c.dropped,
            "refused": dict(c.refused),
            "unanswered": c.unanswered,
            "allowed": list(self._allowed),
        }
