"""The built-in commands: ``ping``, ``status``, ``rebirth``, ``rules_update`` and
``config_update``, and what of the gateway they reach."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tidegate.commands.audit import FINAL
from tidegate.commands.message import Command, CommandRefused

if TYPE_CHECKING:
    from tidegate.commands.answer import Answer
    from tidegate.remote.whole_config import ConfigUpdater

Steps = AsyncIterator[tuple[str, dict[str, Any]]]
"""A built-in's progress: ``(status, fields)`` pairs, the last one final."""

ACCEPTS_ITSELF = frozenset({"rules_update", "config_update"})
"""Built-ins that say ``accepted`` themselves, after checks of their own (validation)."""


@dataclass(frozen=True, slots=True)
class Builtins:
    """What the built-in commands reach of the gateway."""

    status: Callable[[], dict[str, Any]]
    rebirth: Callable[[], int]
    """Ask every uplink's format to announce itself again; how many uplinks did."""
    rules_update: Callable[[str, str], Steps] | None = None
    """``(rules text, origin)`` → its steps; None without ``remote_rules:``."""

    async def run(
        self,
        name: str,
        command: Command,
        answer: Answer,
        *,
        now: float,
        config_update: ConfigUpdater | None,
    ) -> None:
        """Run built-in ``name``; its results through ``answer``."""
        if name == "ping":
            await answer.final(command, "done", result={"pong": now})
        elif name == "status":
            await answer.final(command, "done", result=self.status())
        elif name == "rebirth":
            await answer.final(command, "done", result={"uplinks": self.rebirth()})
        elif name == "rules_update":
            await self._rules_update(command, answer)
        elif name == "config_update":
            from tidegate.commands.config_update import run_config_update  # noqa: PLC0415

            await run_config_update(config_update, command, answer, answer.audit)
        else:  # the config refuses other names without an action
            raise CommandRefused(f"no built-in {name!r}", reason="unknown_command")

    async def _rules_update(self, command: Command, answer: Answer) -> None:
        update = self.rules_update
        if update is None:
            raise CommandRefused(
                "this gateway takes no rules updates (no `remote_rules:` in its config)",
                reason="unknown_command",
            )
        rules = command.args.get("rules")
        if not isinstance(rules, str):
            raise CommandRefused(
                "`args.rules` must be the rules file's text", reason="bad_arguments"
            )
        async for status, fields in update(rules, f"command:{command.id}"):
            if status in FINAL:
                await answer.final(command, status, **fields)
            else:
                await answer.step(command, status, **fields)
