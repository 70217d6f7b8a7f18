"""The console entry point: our errors become one line and an exit code.

Errors tidegate raises on purpose become one line on stderr and an exit code
(2 for configuration and usage, 1 otherwise); tracebacks are only for bugs.
Usage errors are typer's own (exit 2, with the command's usage line).

The most frequent commands in their plain forms skip the typer app, which
costs more than they do (``tidegate.cli.fast``).
"""

from __future__ import annotations

import sys

from tidegate import __version__
from tidegate.errors import ConfigError, TidegateError
from tidegate.wording import count


def _run(argv: list[str], shortcuts: bool) -> None:
    if shortcuts and argv == ["--version"]:
        print(f"tidegate {__version__}")
        return
    from tidegate.cli.fast import run_fast  # noqa: PLC0415 - not for --version

    if shortcuts and run_fast(argv):
        return
    from tidegate.cli.app import app  # noqa: PLC0415 - every command's options

    app(argv)


def main(*, shortcuts: bool = True) -> None:
    """Run the command in ``sys.argv``; ``shortcuts=False`` always builds the typer app."""
    try:
        _run(sys.argv[1:], shortcuts)
    except ConfigError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        problems = count(len(exc.messages), "problem")
        print(f"tidegate: configuration invalid ({problems})", file=sys.stderr)
        sys.exit(exc.exit_code)
    except TidegateError as exc:
        print(f"tidegate: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
