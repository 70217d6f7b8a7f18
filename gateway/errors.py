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


class DriverError(TidegateError):
    """A driver could not open or read its device."""


class BufferError_(TidegateError):
    """The outbox could not store, read or delete events."""


class PublishError(TidegateError):
    """The publisher could not configure or reach the broker."""
