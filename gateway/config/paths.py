"""Which config file a command uses, and how paths inside it are read.

Light on purpose (no YAML, no pydantic): the control client and the CLI's
fast paths use it before, or instead of, loading a whole configuration.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from tidegate.errors import ConfigFileMissing, ConfigFileUnreadable

DEFAULT_CONFIG_PATH = Path("/etc/tidegate/tidegate.yaml")
CONFIG_ENV = "TIDEGATE_CONFIG"
DEFAULT_DATA_DIR = Path("/var/lib/tidegate")
"""``gateway.data_dir`` when the file names none (the service's StateDirectory)."""
HOW_TO_NAME_ONE = f"name one with -c FILE or ${CONFIG_ENV}"


def resolve_config_path(option: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """``-c`` wins, then ``$TIDEGATE_CONFIG``, then /etc/tidegate/tidegate.yaml."""
    if option is not None:
        return option
    env = (os.environ if environ is None else environ).get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def config_given(option: Path | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the user named a config (``-c`` or the variable), not just the default."""
    return option is not None or bool((os.environ if environ is None else environ).get(CONFIG_ENV))


def config_file_exists(path: Path) -> bool:
    """Whether ``path`` exists; a path this user may not look at is a
    ConfigFileUnreadable (``Path.exists`` raises EACCES for it, as a traceback)."""
    try:
        os.stat(path)
    except PermissionError:
        raise ConfigFileUnreadable(unreadable_message(path)) from None
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP):
            return False
        raise ConfigFileUnreadable(f"cannot read config file {path}: {exc.strerror}") from None
    return True


def require_config_file(path: Path) -> Path:
    """``path`` if it exists and this user may read it; else one line saying why not."""
    if not config_file_exists(path):
        raise ConfigFileMissing(f"no such config file: {path} ({HOW_TO_NAME_ONE})")
    if not os.access(path, os.R_OK):
        raise ConfigFileUnreadable(unreadable_message(path))
    return path


def unreadable_message(path: Path) -> str:
    """One line for a file this user may not read, naming what is closed and the way in."""
    return f"cannot read {path}: permission denied ({permission_hint(path)})"


def permission_hint(path: Path) -> str:
    """Which folder (or the file) is closed to this user, and how to get in.

    The service's files are root's and its group's (/etc/tidegate is 0750
    root:tidegate): its members, or sudo, may read them.
    """
    closed = path
    for folder in reversed(path.absolute().parents):
        if not os.access(folder, os.X_OK):
            closed = folder
            break
    try:
        gid = os.stat(closed).st_gid
        mode = os.stat(closed).st_mode
    except OSError:
        return "try sudo"
    what = "folder" if stat.S_ISDIR(mode) else "file"
    if gid == 0:
        return f"the {what} {closed} is open to root only: use sudo"
    import grp  # noqa: PLC0415 - only for this message

    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return (
        f"the {what} {closed} is closed to you: use sudo, or be in its group "
        f"'{group}' (sudo usermod -aG {group} $USER, then log in again)"
    )


def config_relative(path: Path, base: Path) -> Path:
    """A path written in a config file: ``~`` expanded, relative to the file's folder."""
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()
