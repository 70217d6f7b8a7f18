"""The exception hierarchy: one base, one subclass per kind of failure.

The CLI maps these to one-line messages and exit codes; nothing below the CLI
prints tracebacks for them.
"""

from __future__ import annotations


class TidegateError(Exception):
    """Base of every error tidegate raises on purpose."""

    exit_code: int = 1


class ConfigError(TidegateError):
    """The configuration is invalid. Messages read ``FILE:LINE:COL: message``."""

    exit_code = 2

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("\n".join(messages))


class ConfigFileMissing(TidegateError):
    """The config file to load does not exist: one line, not a parse error at 1:1."""

    exit_code = 2


class ConfigFileUnreadable(TidegateError):
    """The config file exists but this user may not read it (a folder or the file
    is closed to them): one line with the way in, not a traceback."""

    exit_code = 2


class SecretUnreadable(TidegateError):
    """A secret the config points at (a password file, variable or credential) cannot
    be had: the config names something that is not there, so exit 2 like a missing
    ``ca_file`` (systemd does not restart on it, see ``RestartPreventExitStatus``)."""

    exit_code = 2


class DriverError(TidegateError):
    """A driver could not open or read its device."""


class BufferError_(TidegateError):
    """The outbox could not store, read or delete events."""


class PublishError(TidegateError):
    """The publisher could not configure or reach the broker."""


class ActionError(TidegateError):
    """An action on a device could not be done: the device failed, did not answer or
    is out of reach. A command that meets one reports ``failed``."""


class ActionRefused(TidegateError):
    """An action was refused before anything moved: an interlock (minimum on/off
    time, maximum switches per hour), or arguments the device cannot take. A command
    that meets one reports ``refused`` with ``reason``."""

    def __init__(self, message: str, *, reason: str = "interlock") -> None:
        super().__init__(message)
        self.reason = reason
        """A short code: ``interlock`` or ``bad_arguments``."""
