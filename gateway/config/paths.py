"""Which config file a command uses, and how paths inside it are read.

Light on purpose (no YAML, no pydantic): the control client and the CLI's
fast paths use it before, or instead of, loading a whole configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tidegate.errors import ConfigFileMissing

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


def require_config_file(path: Path) -> Path:
    """``path`` if it exists; else one line saying so and how to name another."""
    if not path.exists():
        raise ConfigFileMissing(f"no such config file: {path} ({HOW_TO_NAME_ONE})")
    return path


def config_relative(path: Path, base: Path) -> Path:
    """A path written in a config file: ``~`` expanded, relative to the file's folder."""
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()
