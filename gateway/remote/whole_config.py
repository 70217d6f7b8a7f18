"""A whole config file pushed from outside, applied with a restart, that cannot brick a gateway.

Allowed by ``remote_rules: {whole_config: true}``. ``ConfigUpdater.apply(text, …)``
validates the text as ``tidegate check`` would validate the config file (the
loader, relative paths from the file's folder; messages ``NAME:LINE:COL``),
and refuses a config the next start could not confirm or roll back: one
without ``remote_rules:`` and ``whole_config: true``, or with the outbox (the
history's home) elsewhere. A refused text changes nothing (the version is
recorded ``refused``). Otherwise the file as it is (``local``, when the
history does not have it) and the new version (``applied``, kind ``config``)
are recorded, the marker the next start looks for is written, then the file,
atomically. ``restart_now()`` stops the gateway cleanly and starts it again
(``tidegate.remote.trial``), where the version is confirmed by health or
rolled back. One update at a time: while a version waits (here, or on trial
after the restart), rules and config updates are refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tidegate.config.schema import GatewayConfig
from tidegate.errors import ConfigError, TidegateError
from tidegate.remote.history import (
    History,
    HistoryError,
    Version,
    history_dir,
    sha256,
    write_atomically,
)
from tidegate.remote.trial import Marker, Trial, remove_marker, write_marker
from tidegate.remote.update import BUSY, RulesUpdater, UpdateOutcome

log = logging.getLogger(__name__)

NOT_ALLOWED = (
    "this gateway takes no whole-config updates: its `remote_rules:` does not say "
    "`whole_config: true`"
)
NO_RESTART = (
    "this gateway cannot restart itself (it runs under `tidegate simulate`): run it with "
    "`tidegate run` or as the service"
)


def _refused(summary: str, version: int | None = None) -> UpdateOutcome:
    return UpdateOutcome("refused", summary, version)


def check_config_text(config_path: Path, text: str, current: GatewayConfig) -> GatewayConfig:
    """The new config, or ConfigError (every problem, ``NAME:LINE:COL: …``)."""
    from tidegate.config.loader import validate_data  # noqa: PLC0415 - the heavy part
    from tidegate.config.yaml_source import load_yaml_text  # noqa: PLC0415

    data, smap = load_yaml_text(text, config_path.name)
    new = validate_data(data, smap, config_path.parent.resolve())
    section = new.remote_rules
    problem: tuple[tuple[str, ...], str] | None = None
    if section is None:
        problem = (
            (),
            "the new config has no `remote_rules:`: the gateway could not confirm it or roll "
            "it back at its next start, nor take another update",
        )
    elif not section.whole_config:
        problem = (
            ("remote_rules",),
            "remote_rules.whole_config: the new config does not say `whole_config: true`: no "
            "later config update could replace it",
        )
    elif new.outbox_path != current.outbox_path:
        where = ("buffer", "path") if "path" in (data.get("buffer") or {}) else ("gateway",)
        problem = (
            where,
            f"the new config moves the outbox ({current.outbox_path} -> {new.outbox_path}): "
            "its history would be elsewhere, so the next start could not confirm it or roll "
            "it back",
        )
    if problem is not None:
        raise ConfigError([f"{smap.locate(problem[0])}: {problem[1]}"])
    return new


class ConfigUpdater:
    """Whole config updates of one gateway (see the module)."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        config_path: Path | None,
        rules: RulesUpdater,
        restart: Callable[[str], None] | None,
        trial: Trial | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.section = config.remote_rules
        self.history = (
            History(history_dir(config.outbox_path), self.section.keep, "config")
            if self.section is not None
            else None
        )
        self._rules = rules
        self._restart = restart
        self.trial = trial
        self._lock = asyncio.Lock()
        self._applied: int | None = None
        """The version written, waiting for the restart."""
        rules.blocked = lambda: self.busy

    @property
    def busy(self) -> bool:
        return (
            self._lock.locked()
            or self._applied is not None
            or (self.trial is not None and not self.trial.settled)
        )

    def _refusal(self) -> str | None:
        if self.section is None or not self.section.whole_config or self.history is None:
            return NOT_ALLOWED
        if self.config_path is None:
            return "this gateway was not started from a config file"
        if self._restart is None:
            return NO_RESTART
        if self.busy or self._rules.pending is not None:
            return BUSY
        return None

    async def apply(
        self,
        text: str,
        *,
        origin: str,
        reply: dict[str, Any] | None = None,
        restores: int | None = None,
    ) -> UpdateOutcome:
        """Validate ``text`` and write it (``applied``: then ``restart_now``), or refuse it."""
        refusal = self._refusal()
        if refusal is not None:
            return _refused(refusal)
        assert self.history is not None and self.config_path is not None
        async with self._lock:
            history, path = self.history, self.config_path
            data = text.encode()
            try:
                new = await asyncio.to_thread(check_config_text, path, text, self.config)
            except ConfigError as exc:
                version = await asyncio.to_thread(
                    history.add,
                    data,
                    origin=origin,
                    outcome="refused",
                    reason="\n".join(exc.messages),
                    restores=restores,
                )
                log.warning(
                    "config update %d from %s refused: the config is invalid",
                    version.version,
                    origin,
                )
                return UpdateOutcome.of(version)
            except TidegateError as exc:
                return _refused(f"{exc}")
            assert new.remote_rules is not None
            marker = (new.remote_rules.confirm_within, new.remote_rules.healthy_for)
            try:
                version = await asyncio.to_thread(
                    lambda: self._record(
                        history,
                        path=path,
                        data=data,
                        origin=origin,
                        restores=restores,
                        reply=reply,
                        timing=marker,
                    )
                )
            except TidegateError as exc:
                log.error("config update from %s refused: %s", origin, exc)
                return _refused(f"{exc}")
            self._applied = version.version
        log.warning(
            "config update %d from %s applied: the gateway restarts on it", version.version, origin
        )
        return UpdateOutcome(
            "applied",
            f"version {version.version} applied; the gateway restarts to confirm it within "
            f"{marker[0]:g} s",
            version.version,
        )

    def _record(
        self,
        history: History,
        *,
        path: Path,
        data: bytes,
        origin: str,
        restores: int | None,
        reply: dict[str, Any] | None,
        timing: tuple[float, float],
    ) -> Version:
        """The file as it is, the new version, the marker, then the file: a crash from
        the marker on is sorted out at the next start (``begin_trial``)."""
        try:
            before = path.read_bytes()
        except OSError as exc:
            raise HistoryError(f"cannot read {path}: {exc.strerror or exc}") from None
        current = history.current()
        if current is None or current.sha256 != sha256(before):
            current = history.add(before, origin="local", outcome="confirmed")
        version = history.add(
            data,
            origin=origin,
            outcome="applied",
            previous=current.version,
            restores=restores,
            reply=reply,
        )
        try:
            write_marker(path, Marker(str(history.folder), history.keep, version.version, *timing))
            write_atomically(path, data)
        except HistoryError as exc:
            remove_marker(path)
            history.mark(version, "refused", f"{exc}")
            raise
        return version

    def restart_now(self) -> None:
        """Restart the gateway on the version just applied (a clean stop first)."""
        if self._applied is not None and self._restart is not None:
            self._restart(f"config update {self._applied}")

    async def rollback(self, version: int) -> UpdateOutcome:
        """Apply a kept config version again, as an update of origin ``rollback``."""
        if self.history is None:
            return _refused(NOT_ALLOWED)
        target = self.history.get(version)
        if target is None:
            have = ", ".join(str(v.version) for v in self.history.versions()) or "none"
            return _refused(f"there is no config version {version} (kept: {have})")
        try:
            text = self.history.text(version).decode()
        except (TidegateError, UnicodeDecodeError) as exc:
            return _refused(f"version {version} cannot be read: {exc}")
        return await self.apply(text, origin="rollback", restores=version)
