"""Installing tidegate as a systemd service: unit, user, directories, example config.

Every step is idempotent and reports one line: running ``install`` twice
changes nothing the second time, and says so. ``root`` installs into a
directory tree instead of ``/`` (an SD-card image being built, or a test);
systemd is then not asked to do anything, the unit is enabled by the same
symlink ``systemctl enable`` would make.

The user comes from a sysusers.d file applied with ``systemd-sysusers``
(``--root`` aware, and re-applied at boot), so the account, its group and its
device groups (``dialout`` for serial ports, ``gpio`` for GPIO chips, ``i2c`` for
I²C buses) are
declared in one place rather than made by a sequence of ``useradd`` calls.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tidegate.errors import ConfigError, TidegateError
from tidegate.ops.service_files import (
    CONFIG_DIR,
    CREDENTIALS_DIR,
    DEFAULT_CONFIG,
    DEFAULT_USER,
    DEVICE_GROUPS,
    STATE_DIR,
    SYSUSERS_FILE,
    UNIT_DIR,
    UNIT_NAME,
    WANTS_DIR,
    default_exec_start,
    example_config,
    render_sysusers,
    render_unit,
)

__all__ = [  # the texts and paths live in tidegate.ops.service_files
    "DEFAULT_CONFIG",
    "DEFAULT_USER",
    "Installer",
    "ServiceError",
    "ServiceOptions",
    "default_exec_start",
    "render_unit",
    "run_command",
]

USER_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")


class ServiceError(TidegateError):
    """The service could not be installed or removed."""


def systemd_running() -> bool:
    """sd_booted(3): the system was booted with systemd as its service manager."""
    return Path("/run/systemd/system").is_dir()


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    root: Path = Path("/")
    user: str = DEFAULT_USER
    config: PurePosixPath = DEFAULT_CONFIG
    exec_start: str = ""
    """The program part of ExecStart=; empty: this installation (``default_exec_start``)."""
    dry_run: bool = False


Runner = Callable[[list[str]], None]


def run_command(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"{argv[0]} failed: {exc}") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise ServiceError(f"`{' '.join(argv)}` failed: {reason}")


class Installer:
    """Carries out (or, dry, describes) the install and uninstall steps."""

    def __init__(
        self, options: ServiceOptions, say: Callable[[str], None], run: Runner = run_command
    ) -> None:
        if not USER_PATTERN.match(options.user):
            raise ServiceError(f"'{options.user}' is not a valid system user name")
        if not options.config.is_absolute():
            raise ServiceError(f"the config path must be absolute, not {options.config}")
        self.options = options
        self.root = options.root.resolve()
        self.live = self.root == Path("/")
        self.say = say
        self.run = run
        self.privileged = os.geteuid() == 0
        if self.live and not self.privileged and not options.dry_run:
            raise ServiceError("installing the service needs root: sudo tidegate service …")

    def path(self, target: PurePosixPath) -> Path:
        """Where a path of the installed system lives in the tree being written."""
        return self.root / target.relative_to("/")

    def _did(self, done: str, would: str, what: PurePosixPath | str) -> None:
        self.say(f"{would if self.options.dry_run else done} {what}")

    # -- pieces -------------------------------------------------------------------------

    def _write(self, target: PurePosixPath, text: str, mode: int, group: str) -> bool:
        """Write a file if its content differs; True when it was (or would be) written."""
        path = self.path(target)
        with_content = path.is_file() and path.read_text(encoding="utf-8") == text
        if with_content:
            self.say(f"unchanged {target}")
            return False
        self._did("wrote", "would write", target)
        if not self.options.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(mode)
            self._chown(tmp, "root", group)
            tmp.replace(path)
        return True

    def _directory(self, target: PurePosixPath, mode: int, user: str, group: str) -> None:
        path = self.path(target)
        if path.is_dir():
            self.say(f"exists {target}")
        else:
            self._did("created", "would create", target)
        if not self.options.dry_run:
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)
            self._chown(path, user, group)

    def _ids(self, database: str, name: str) -> int | None:
        """The id of a user or group in the tree's /etc/passwd or /etc/group."""
        try:
            lines = self.path(PurePosixPath("/etc") / database).read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        return None

    def _chown(self, path: Path, user: str, group: str | None) -> None:
        if not self.privileged:
            return  # an unprivileged --root build: ownership is the image builder's job
        uid = self._ids("passwd", user)
        gid = self._ids("group", group) if group else None
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)

    def _create_user(self) -> None:
        user = self.options.user
        sysusers = shutil.which("systemd-sysusers")
        existed = self._ids("passwd", user) is not None
        if self.options.dry_run:
            self.say(f"{'exists' if existed else 'would create'} user {user}")
            return
        if sysusers is not None:
            self.path(PurePosixPath("/etc")).mkdir(parents=True, exist_ok=True)
            argv = [sysusers]
            if not self.live:
                argv.append(f"--root={self.root}")
            self.run([*argv, str(self.path(SYSUSERS_FILE))])
        elif self.live:
            self._create_user_with_useradd(user, existed)
        else:
            raise ServiceError(
                "creating the user in --root needs systemd-sysusers (apt install systemd)"
            )
        self.say(
            f"{'exists' if existed else 'created'} user {user} (groups {user}, "
            f"{', '.join(DEVICE_GROUPS)})"
        )

    def _create_user_with_useradd(self, user: str, existed: bool) -> None:
        for group in DEVICE_GROUPS:
            if self._ids("group", group) is None:
                self.run(["groupadd", "--system", group])
        if not existed:
            self.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--home-dir",
                    str(STATE_DIR),
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--comment",
                    "tidegate gateway",
                    user,
                ]
            )
        self.run(["usermod", "--append", "--groups", ",".join(DEVICE_GROUPS), user])

    def _check_config(self) -> None:
        from tidegate.config.loader import load_config  # noqa: PLC0415 - only install needs it

        path = self.path(self.options.config)
        if not path.is_file():
            return
        try:
            load_config(path)
        except ConfigError as exc:
            self.say(
                f"warning: {self.options.config} is invalid; the service will not start "
                f"until it is fixed:"
            )
            for message in exc.messages:
                self.say(f"  {message}")
        except TidegateError as exc:
            self.say(f"warning: {self.options.config}: {exc}")

    # -- the two commands -----------------------------------------------------------------

    def install(self) -> None:
        options = self.options
        user = options.user
        exec_start = options.exec_start or default_exec_start()
        self._write(SYSUSERS_FILE, render_sysusers(user), 0o644, "root")
        self._create_user()
        self._directory(CONFIG_DIR, 0o750, "root", user)
        self._directory(CREDENTIALS_DIR, 0o700, "root", "root")
        self._directory(STATE_DIR, 0o750, user, user)
        config = options.config
        if self.path(config).exists():
            self.say(f"kept {config}")
        else:
            self._write(config, example_config(config), 0o640, user)
        unit_changed = self._write(
            UNIT_DIR / UNIT_NAME, render_unit(exec_start, config, user), 0o644, "root"
        )
        self._check_config()
        if self.live and systemd_running():
            self._start_with_systemctl(unit_changed)
        else:
            self._enable_by_symlink()
            if self.live:
                self.say("systemd is not running here: the service starts at the next boot")

    def _start_with_systemctl(self, unit_changed: bool) -> None:
        steps = [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", UNIT_NAME]]
        if unit_changed:  # a running service keeps its old settings until restarted
            steps.append(["systemctl", "try-restart", UNIT_NAME])
        for argv in steps:
            self._did("ran", "would run", " ".join(argv))
            if not self.options.dry_run:
                self.run(argv)

    def _enable_by_symlink(self) -> None:
        # What `systemctl enable` does for WantedBy=multi-user.target.
        link = self.path(WANTS_DIR / UNIT_NAME)
        target = str(UNIT_DIR / UNIT_NAME)
        if link.is_symlink() and os.readlink(link) == target:
            self.say(f"enabled {UNIT_NAME} (already)")
            return
        self._did("enabled", "would enable", f"{UNIT_NAME} ({WANTS_DIR / UNIT_NAME})")
        if not self.options.dry_run:
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(target)

    def uninstall(self, purge: bool = False) -> None:
        if self.live and systemd_running():
            argv = ["systemctl", "disable", "--now", UNIT_NAME]
            self._did("ran", "would run", " ".join(argv))
            if not self.options.dry_run and self.path(UNIT_DIR / UNIT_NAME).exists():
                self.run(argv)
        for target in (WANTS_DIR / UNIT_NAME, UNIT_DIR / UNIT_NAME, SYSUSERS_FILE):
            path = self.path(target)
            if not (path.exists() or path.is_symlink()):
                self.say(f"absent {target}")
                continue
            self._did("removed", "would remove", target)
            if not self.options.dry_run:
                path.unlink()
        if self.live and systemd_running() and not self.options.dry_run:
            self.run(["systemctl", "daemon-reload"])
        for target in (CONFIG_DIR, STATE_DIR):
            path = self.path(target)
            if not path.exists():
                continue
            if not purge:
                self.say(
                    f"kept {target} (--purge removes it"
                    f"{', and the events still in the outbox' if target == STATE_DIR else ''})"
                )
                continue
            self._did("removed", "would remove", target)
            if not self.options.dry_run:
                shutil.rmtree(path)
        self.say(
            f"kept user {self.options.user}: remove it with `userdel {self.options.user}` "
            "once no file belongs to it"
        )
