"""Building a gateway's command service: its key, its audit, and a command link on
each uplink that takes commands."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tidegate.actions.runner import ActionRunner
from tidegate.commands.audit import CommandAudit
from tidegate.commands.builtins import Builtins, Steps
from tidegate.commands.service import CommandService
from tidegate.mqtt.credentials import read_secret
from tidegate.uplink.command_link import CommandLink

if TYPE_CHECKING:
    from tidegate.config.schema import GatewayConfig
    from tidegate.remote.update import RulesUpdater
    from tidegate.uplink.publisher import Publisher


def build_commands(
    config: GatewayConfig,
    *,
    actions: ActionRunner | None,
    publishers: Sequence[Publisher],
    status: Callable[[], dict[str, Any]],
    rules_update: RulesUpdater | None,
    clock_trusted: Callable[[], bool],
) -> CommandService:
    """The service for ``config.commands``, linked to the uplinks that take commands."""
    section = config.commands
    assert section is not None
    key = read_secret(
        section.key_file,
        section.key_env,
        section.key_credential,
        named="the commands' HMAC key",
        key="key_credential",
    )
    service = CommandService(
        section,
        actions=actions,
        # Ids stay known for twice the replay window, whatever audit_keep says.
        audit=CommandAudit(config.outbox_path, section.audit_keep, protect=2 * section.max_skew),
        builtins=Builtins(
            status=status,
            rebirth=lambda: sum(p.reannounce() for p in publishers),
            rules_update=None if rules_update is None else _steps_of(rules_update),
        ),
        key=key,
        clock_trusted=clock_trusted,
    )
    chosen = section.uplinks
    for uplink, publisher in zip(config.all_uplinks(), publishers, strict=True):
        if chosen is None or uplink.name in chosen:
            base = section.topic or f"{config.uplink_prefix(uplink)}/cmd"
            publisher.commands = CommandLink(service, uplink.name, base, section.results_qos)
    return service


def _steps_of(updater: RulesUpdater) -> Callable[[str, str], Steps]:
    """The ``rules_update`` built-in's steps: ``accepted`` once the new rules run, then
    ``done`` when health confirmed them or ``failed`` when they were rolled back."""

    async def steps(text: str, origin: str) -> Steps:
        from tidegate.remote.update import BUSY  # noqa: PLC0415 - with the updater

        applied = await updater.apply(text, origin=origin)
        if not applied.accepted:
            yield (
                "refused",
                {
                    "reason": "busy" if applied.summary.startswith(BUSY) else "bad_arguments",
                    "message": applied.summary,
                    "details": list(applied.details) or None,
                },
            )
            return
        yield "accepted", {"result": {"version": applied.version}, "message": applied.summary}
        assert applied.version is not None
        settled = await updater.settled(applied.version)
        if settled.state == "confirmed":
            yield "done", {"result": {"version": settled.version}, "message": settled.summary}
        elif settled.state == "rolled_back":
            yield "failed", {"message": settled.summary, "result": {"version": settled.version}}
        else:  # the gateway is stopping: the next start rolls it back
            yield "interrupted", {"message": settled.summary}

    return steps
