"""At start, before the rules run: an update still pending is rolled back.

A version recorded ``applied`` and never confirmed means the gateway stopped
(a crash, a power cut, the watchdog, a restart) before it was found healthy:
it counts as failed. Its previous file is written back, the version recorded
``rolled_back``, and the rule set read again from the files, so the rule
stage is built from the rules that were confirmed. ``tidegate.cli.serve``
calls this between loading the config and building the gateway.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tidegate.config.schema import GatewayConfig
from tidegate.remote.history import History, history_dir, write_atomically

log = logging.getLogger(__name__)


def recover_pending(config: GatewayConfig, config_path: Path | None) -> GatewayConfig:
    """``config``, with its rules read again when a pending update was rolled back."""
    section = config.remote_rules
    if section is None or config_path is None:
        return config
    history = History(history_dir(config.outbox_path), section.keep)
    pending = history.pending()
    if pending is None:
        return config
    previous = b"" if pending.previous is None else history.text(pending.previous)
    write_atomically(section.file, previous)
    reason = "the gateway restarted before the update was confirmed"
    history.mark(pending, "rolled_back", reason)
    log.warning(
        "rules update %d rolled back to version %s: %s",
        pending.version,
        pending.previous,
        reason,
    )
    from tidegate.rules.loader import load_rules_of_config  # noqa: PLC0415 - the rule engine

    return config.model_copy(update={"rules": load_rules_of_config(config_path)})
