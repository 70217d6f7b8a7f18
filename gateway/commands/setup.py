"""Building a gateway's command service: its key, its audit, and a command link on
each uplink that takes commands."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tidegate.actions.runner import ActionRunner
from tidegate.commands.audit import CommandAudit
from tidegate.commands.service import Builtins, CommandService, Steps
from tidegate.mqtt.credentials import read_secret
from tidegate.uplink.command_link import CommandLink

if TYPE_CHECKING:
    from tidegate.config.schema import GatewayConfig
    from tidegate.uplink.publisher import Publisher


def build_commands(
    config: GatewayConfig,
    *,
    actions: ActionRunner | None,
    publishers: Sequence[Publisher],
    status: Callable[[], dict[str, Any]],
    rules_update: Callable[[str, str], Steps] | None,
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
        audit=CommandAudit(config.outbox_path, section.audit_keep),
        builtins=Builtins(
            status=status,
            rebirth=lambda: sum(p.reannounce() for p in publishers),
            rules_update=rules_update,
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
