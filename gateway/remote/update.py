"""A rules update that cannot brick the gateway: validate, apply, confirm or roll back.

``RulesUpdater.apply(text, origin=…)`` checks the text as the rule file of
``remote_rules.file`` within the whole rule set (``tidegate.remote.validate``);
a text with problems is refused with every ``FILE:LINE:COL`` message and
nothing changes. Otherwise the version is recorded (``applied``: pending),
the file written atomically and the rules reloaded, and ``apply`` returns.
A background task then watches the gateway's health: healthy
``healthy_for`` in a row (or healthy at the ``confirm_within`` deadline)
confirms the version; unhealthy at the deadline restores the previous file,
reloads it and records ``rolled_back`` with what was not healthy. One update
at a time: another one while a version waits for confirmation is refused.
``settled(version)`` waits for a version's final outcome.

A gateway stopped while a version is pending rolls it back at its next start
(``tidegate.remote.startup``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidegate.config.remote_rules import RemoteRulesSection
from tidegate.errors import ConfigError, TidegateError
from tidegate.ops.reload import ReloadOutcome
from tidegate.remote.history import History, Outcome, Version, history_dir, sha256
from tidegate.remote.history import write_atomically as _write
from tidegate.remote.validate import check_rule_text

log = logging.getLogger(__name__)

Health = Callable[[], str | None]
"""None while the gateway is healthy, else what is not (``uplink default disconnected``)."""
Reload = Callable[[], Awaitable[ReloadOutcome]]

NO_SECTION = "this gateway takes no rules updates: its config has no `remote_rules:` section"
BUSY = "an update is waiting for confirmation"
POLL = 0.25
"""How often health is looked at while a version waits (at most)."""


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """What an update (or a roll-back request) came to, so far or in the end."""

    state: Outcome
    """``applied`` (accepted, waiting for confirmation), ``confirmed``,
    ``rolled_back`` or ``refused``."""
    summary: str
    """One line."""
    version: int | None = None
    """The history version; None for a request refused before anything was recorded."""
    details: tuple[str, ...] = field(default=())
    """``FILE:LINE:COL: message`` lines for refused text."""

    @property
    def accepted(self) -> bool:
        return self.state != "refused"

    @property
    def final(self) -> bool:
        return self.state != "applied"

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "summary": self.summary,
            "version": self.version,
            "details": list(self.details),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> UpdateOutcome:
        version = doc.get("version")
        return cls(
            doc["state"],
            str(doc["summary"]),
            None if version is None else int(version),
            tuple(map(str, doc.get("details", ()))),
        )

    @classmethod
    def of(cls, version: Version) -> UpdateOutcome:
        """A recorded version's outcome."""
        reason = (version.reason or "").splitlines()
        summary = {
            "applied": f"version {version.version} applied; waiting for confirmation",
            "confirmed": f"version {version.version} confirmed",
            "rolled_back": f"version {version.version} rolled back: {reason[0] if reason else ''}",
            "refused": f"version {version.version} refused: the {version.kind} "
            f"{'are' if version.kind == 'rules' else 'is'} invalid",
        }[version.outcome]
        details = tuple(reason) if version.outcome == "refused" else ()
        return cls(version.outcome, summary, version.version, details)


def _refused(summary: str) -> UpdateOutcome:
    return UpdateOutcome("refused", summary)


@dataclass(slots=True)
class _Pending:
    version: Version
    previous: bytes
    done: asyncio.Future[UpdateOutcome]
    task: asyncio.Task[None] | None = None


class RulesUpdater:
    """Applies rules updates to one gateway (built by ``tidegate.pipeline.Gateway``)."""

    def __init__(
        self,
        section: RemoteRulesSection | None,
        *,
        config_path: Path | None,
        outbox_path: Path,
        uplinks: Sequence[str],
        reload: Reload,
        health: Health,
    ) -> None:
        self.section = section
        self.config_path = config_path
        self.uplinks = tuple(uplinks)
        self._reload = reload
        self._health = health
        self.history: History | None = (
            History(history_dir(outbox_path), section.keep) if section is not None else None
        )
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self.blocked: Callable[[], bool] = lambda: False
        """True while a whole-config version waits (``tidegate.remote.whole_config``)."""

    @property
    def pending(self) -> int | None:
        """The version waiting for confirmation, if any."""
        return self._pending.version.version if self._pending is not None else None

    async def apply(self, text: str, *, origin: str, restores: int | None = None) -> UpdateOutcome:
        """Validate ``text`` and apply it, or refuse it with the reasons (nothing changes).

        ``origin`` is recorded with the version (``command:<id>``, ``cli``,
        ``rollback``). Returns ``applied`` (then ``settled`` tells the end) or
        ``refused``.
        """
        if self.section is None or self.history is None:
            return _refused(NO_SECTION)
        if self.config_path is None:
            return _refused("this gateway was not started from a config file")
        if self._lock.locked() or self._pending is not None or self.blocked():
            return _refused(BUSY)
        async with self._lock:
            try:
                return await self._apply(self.section, self.history, text, origin, restores)
            except TidegateError as exc:
                log.error("rules update failed: %s", exc)
                return _refused(f"{exc}")

    async def _apply(
        self,
        section: RemoteRulesSection,
        history: History,
        text: str,
        origin: str,
        restores: int | None,
    ) -> UpdateOutcome:
        assert self.config_path is not None
        data = text.encode()
        try:
            await asyncio.to_thread(
                check_rule_text, self.config_path, section.file, text, self.uplinks
            )
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
                "rules update %d from %s refused: the rules are invalid", version.version, origin
            )
            return UpdateOutcome.of(version)
        previous, version = await asyncio.to_thread(
            self._record, section, history, data, origin, restores
        )
        reloaded = await self._reload()
        if not reloaded.ok:
            # Valid a moment ago: another file changed under us. Put the old one back.
            await asyncio.to_thread(_write, section.file, previous)
            await self._reload()
            reason = "\n".join((reloaded.summary, *reloaded.details))
            version = await asyncio.to_thread(history.mark, version, "refused", reason)
            return UpdateOutcome.of(version)
        loop = asyncio.get_running_loop()
        pending = _Pending(version, previous, loop.create_future())
        self._pending = pending
        pending.task = asyncio.create_task(
            self._watch(section, history, pending), name=f"rules-update:{version.version}"
        )
        log.info(
            "rules update %d from %s applied; confirming within %gs",
            version.version,
            origin,
            section.confirm_within,
        )
        return UpdateOutcome(
            "applied",
            f"version {version.version} applied; confirming within {section.confirm_within:g} s",
            version.version,
        )

    def _record(
        self,
        section: RemoteRulesSection,
        history: History,
        data: bytes,
        origin: str,
        restores: int | None,
    ) -> tuple[bytes, Version]:
        """Record the file as it is (when the history does not have it) and the new
        version, then write the file: a crash from here on is rolled back at start."""
        try:
            before = section.file.read_bytes()
        except FileNotFoundError:
            before = b""  # an empty rule file has no rules: the same as none
        current = history.current()
        if current is None or current.sha256 != sha256(before):
            current = history.add(before, origin="local", outcome="confirmed")
        version = history.add(
            data, origin=origin, outcome="applied", previous=current.version, restores=restores
        )
        _write(section.file, data)
        return before, version

    async def _watch(
        self, section: RemoteRulesSection, history: History, pending: _Pending
    ) -> None:
        try:
            await self._confirm(section, history, pending)
        except Exception as exc:
            # The history or the file could not be written: the record stays `applied`,
            # so the next start rolls it back; this gateway takes updates again.
            log.exception("rules update %d: watching it failed", pending.version.version)
            self._pending = None
            if not pending.done.done():
                pending.done.set_result(
                    UpdateOutcome(
                        "applied",
                        f"version {pending.version.version} could not be settled ({exc}); "
                        "it is rolled back at the next start",
                        pending.version.version,
                    )
                )

    async def _confirm(
        self, section: RemoteRulesSection, history: History, pending: _Pending
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + section.confirm_within
        healthy_since: float | None = None
        while True:
            problem = self._health()
            now = loop.time()
            if problem is None:
                healthy_since = now if healthy_since is None else healthy_since
                if now - healthy_since >= section.healthy_for or now >= deadline:
                    await self._settle(history, pending, "confirmed", None)
                    return
            else:
                healthy_since = None
                if now >= deadline:
                    reason = f"not healthy within {section.confirm_within:g} s: {problem}"
                    await self._roll_back(section, history, pending, reason)
                    return
            await asyncio.sleep(max(0.0, min(POLL, deadline - now)))

    async def _roll_back(
        self, section: RemoteRulesSection, history: History, pending: _Pending, reason: str
    ) -> None:
        await asyncio.to_thread(_write, section.file, pending.previous)
        reloaded = await self._reload()
        if not reloaded.ok:
            reason += f"; reloading the previous rules failed: {reloaded.summary}"
        log.warning(
            "rules update %d rolled back to version %s: %s",
            pending.version.version,
            pending.version.previous,
            reason,
        )
        await self._settle(history, pending, "rolled_back", reason)

    async def _settle(
        self, history: History, pending: _Pending, outcome: Outcome, reason: str | None
    ) -> None:
        try:
            version = await asyncio.to_thread(history.mark, pending.version, outcome, reason)
        except TidegateError as exc:
            log.error("rules update %d: %s", pending.version.version, exc)
            version = Version(**{**pending.version.to_json(), "outcome": outcome, "reason": reason})
        if outcome == "confirmed":
            log.info("rules update %d confirmed", version.version)
        self._pending = None
        pending.done.set_result(UpdateOutcome.of(version))

    async def settled(self, version: int) -> UpdateOutcome:
        """The final outcome of ``version``: waits while it is pending."""
        pending = self._pending
        if pending is not None and pending.version.version == version:
            return await asyncio.shield(pending.done)
        found = None if self.history is None else self.history.get(version)
        if found is None:
            return _refused(f"there is no version {version}")
        return UpdateOutcome.of(found)

    async def rollback(self, version: int | None = None) -> UpdateOutcome:
        """Apply a kept version again (default: the confirmed one before the current one),
        as an update of origin ``rollback``: validated, then confirmed or rolled back."""
        if self.history is None:
            return _refused(NO_SECTION)
        target = self.history.get(version) if version is not None else earlier(self.history)
        if target is None:
            return _refused(
                f"there is no version {version}"
                if version is not None
                else "there is no earlier confirmed version to roll back to"
            )
        try:
            text = self.history.text(target.version).decode()
        except (TidegateError, UnicodeDecodeError) as exc:
            return _refused(f"version {target.version} cannot be read: {exc}")
        return await self.apply(text, origin="rollback", restores=target.version)

    async def close(self) -> None:
        """Stop watching; a version still pending is rolled back at the next start."""
        pending = self._pending
        if pending is not None and pending.task is not None:
            pending.task.cancel()
            await asyncio.gather(pending.task, return_exceptions=True)
            if not pending.done.done():
                pending.done.set_result(
                    UpdateOutcome(
                        "applied",
                        f"version {pending.version.version} was not confirmed before the gateway "
                        "stopped; it is rolled back at the next start",
                        pending.version.version,
                    )
                )


def earlier(history: History) -> Version | None:
    """The newest confirmed version before the current one that differs from it: what a
    plain ``rollback`` restores."""
    current = history.current()
    confirmed = [
        v
        for v in history.versions()
        if v.outcome == "confirmed"
        and (current is None or (v.version < current.version and v.sha256 != current.sha256))
    ]
    return confirmed[-1] if confirmed else None
