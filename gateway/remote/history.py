"""The versions of the remotely updated rule file, kept beside the outbox.

``<outbox folder>/rules-history/`` holds, per version, the file's bytes
(``0007.yaml``) and a small record (``0007.json``)::

    {"version": 7, "time": "2025-05-01T10:00:00Z", "origin": "command:42",
     "sha256": "…", "outcome": "confirmed", "reason": null, "previous": 6,
     "restores": null, "kind": "rules", "starts": 0, "reply": null}

``kind`` is ``rules`` (the remote rule file) or ``config`` (the whole config
file, applied with a restart: ``tidegate.remote.whole_config``); the two
kinds share the numbers and the folder, and each is kept and pruned on its
own. ``starts`` counts the starts of a gateway on a pending config version
(one that did not end healthy means it is rolled back); ``reply`` is where
the command that brought a config version waits for its final result
(``tidegate.commands.config_update``).

``outcome`` is ``applied`` while the update waits for confirmation (the
marker a restart looks for: ``tidegate.remote.startup``), then
``confirmed`` or ``rolled_back`` (with ``reason``); ``refused`` (with the
validation messages in ``reason``) for text that was never applied.
``previous`` is the version the file held before, what a roll-back
restores; ``restores`` the version a ``rollback`` brought back. The file
found before the first update is recorded as a version of origin
``local``.

Every file is written atomically (a temporary file, fsync, rename, fsync of
the folder): a power cut leaves the old file or the new one, never half of
one. The folder keeps the newest ``keep + 1`` confirmed or pending versions
(the current one and ``keep`` to go back to) and the newest ``keep`` others.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from tidegate.errors import TidegateError

Outcome = Literal["applied", "confirmed", "rolled_back", "refused"]
OUTCOMES: tuple[Outcome, ...] = ("applied", "confirmed", "rolled_back", "refused")
Kind = Literal["rules", "config"]
KINDS: tuple[Kind, ...] = ("rules", "config")
FOLDER = "rules-history"
_NAME = re.compile(r"^(\d{4,})\.json$")


class HistoryError(TidegateError):
    """The history folder or one of its files cannot be read or written."""


def history_dir(outbox_path: Path) -> Path:
    """Where the versions of a gateway with this outbox are kept."""
    return outbox_path.parent / FOLDER


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a crash leaves the old bytes or the new ones."""
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(staged, path)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        with contextlib.suppress(OSError):
            staged.unlink()
        raise HistoryError(f"cannot write {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class Version:
    """One version's record (its bytes are in the ``.yaml`` beside it)."""

    version: int
    time: str
    origin: str
    sha256: str
    outcome: Outcome
    reason: str | None = None
    previous: int | None = None
    restores: int | None = None
    kind: Kind = "rules"
    starts: int = 0
    reply: dict[str, Any] | None = None

    @property
    def pending(self) -> bool:
        return self.outcome == "applied"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Version:
        outcome = doc.get("outcome")
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        kind = doc.get("kind", "rules")
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        reply = doc.get("reply")
        return cls(
            version=int(doc["version"]),
            time=str(doc["time"]),
            origin=str(doc["origin"]),
            sha256=str(doc["sha256"]),
            outcome=outcome,
            reason=None if doc.get("reason") is None else str(doc["reason"]),
            previous=None if doc.get("previous") is None else int(doc["previous"]),
            restores=None if doc.get("restores") is None else int(doc["restores"]),
            kind=kind,
            starts=int(doc.get("starts", 0)),
            reply=reply if isinstance(reply, dict) else None,
        )


class History:
    """The versions of one kind in one folder; every method reads or writes the files
    directly. Numbers are shared with the other kind's versions in the folder."""

    def __init__(self, folder: Path, keep: int, kind: Kind = "rules") -> None:
        self.folder = folder
        self.keep = keep
        self.kind: Kind = kind

    def _record_path(self, version: int) -> Path:
        return self.folder / f"{version:04d}.json"

    def text_path(self, version: int) -> Path:
        return self.folder / f"{version:04d}.yaml"

    def versions(self) -> list[Version]:
        """Every kept version of this kind, oldest first."""
        return [v for v in self.everything() if v.kind == self.kind]

    def everything(self) -> list[Version]:
        """Every kept version of either kind, oldest first; a record that cannot be read
        is skipped."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            if _NAME.match(path.name) is None:
                continue
            try:
                found.append(Version.from_json(json.loads(path.read_bytes())))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a record from a crash before rename is never half written
        return sorted(found, key=lambda v: v.version)

    def get(self, version: int) -> Version | None:
        return next((v for v in self.versions() if v.version == version), None)

    def text(self, version: int) -> bytes:
        try:
            return self.text_path(version).read_bytes()
        except OSError as exc:
            raise HistoryError(f"cannot read version {version}: {exc.strerror or exc}") from None

    def current(self) -> Version | None:
        """The version the file holds: the pending one, else the newest confirmed one."""
        for version in reversed(self.versions()):
            if version.outcome in ("applied", "confirmed"):
                return version
        return None

    def pending(self) -> Version | None:
        current = self.current()
        return current if current is not None and current.pending else None

    def add(
        self,
        data: bytes,
        *,
        origin: str,
        outcome: Outcome,
        reason: str | None = None,
        previous: int | None = None,
        restores: int | None = None,
        reply: dict[str, Any] | None = None,
    ) -> Version:
        """Record a new version (its bytes first, then its record), then prune."""
        try:
            self.folder.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(f"cannot create {self.folder}: {exc.strerror or exc}") from None
        existing = self.everything()
        number = existing[-1].version + 1 if existing else 1
        version = Version(
            number,
            _utc_now(),
            origin,
            sha256(data),
            outcome,
            reason,
            previous,
            restores,
            self.kind,
            reply=reply,
        )
        write_atomically(self.text_path(number), data)
        self.save(version)
        self.prune()
        return version

    def save(self, version: Version) -> None:
        write_atomically(self._record_path(version.version), _encode(version))

    def mark(self, version: Version, outcome: Outcome, reason: str | None = None) -> Version:
        marked = replace(version, outcome=outcome, reason=reason)
        self.save(marked)
        self.prune()
        return marked

    def prune(self) -> None:
        """Drop what is beyond the bounds (of this kind); a pending version and what it
        restores stay."""
        versions = self.versions()
        kept_states = [v for v in versions if v.outcome in ("applied", "confirmed")]
        others = [v for v in versions if v.outcome not in ("applied", "confirmed")]
        keep = {v.version for v in kept_states[-(self.keep + 1) :]}
        keep |= {v.version for v in others[-self.keep :]}
        for v in versions:
            if v.pending and v.previous is not None:
                keep.add(v.previous)
        self._remove(v.version for v in versions if v.version not in keep)

    def _remove(self, numbers: Iterable[int]) -> None:
        for number in numbers:
            # The record first: a crash in between leaves bytes without a record, never
            # a record whose bytes are gone.
            for path in (self._record_path(number), self.text_path(number)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _encode(version: Version) -> bytes:
    return json.dumps(version.to_json(), indent=1).encode() + b"\n"
