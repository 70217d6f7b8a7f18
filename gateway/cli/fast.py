"""The commands run most often, without the typer app (``--version`` is ``main``'s).

Importing typer costs ~70 ms, and typer (0.2x) turns every option value into
its type through a pydantic TypeAdapter: ~100 ms more before a command that
has no other use for pydantic does anything, and a megabyte or two that a
gateway would keep. `tidegate --version`, `tidegate check FILE` and
`tidegate status` are what scripts, editors and people at a Pi's console run,
and `tidegate run --config FILE` is what the systemd unit runs; written in
the plain forms below they are recognised here and do what their typer
commands do (``tidegate.cli.reports``, ``tidegate.cli.launch``). Anything
else — help, a mistyped or repeated option, a missing value — goes to typer,
which says what is wrong the usual way.

    tidegate check [FILE] [-c|--config FILE]
    tidegate status [--json] [-c|--config FILE] [--socket PATH]
    tidegate run [-c|--config FILE]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Grammar:
    """The plain form of one command: flags, options with a value, one positional."""

    flags: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, str] = field(default_factory=dict)
    positional: str | None = None


GRAMMARS = {
    "check": Grammar(values={"-c": "config", "--config": "config"}, positional="file"),
    "status": Grammar(
        flags={"--json": "json"},
        values={"-c": "config", "--config": "config", "--socket": "socket"},
    ),
    "run": Grammar(values={"-c": "config", "--config": "config"}),
}


def parse(args: list[str], grammar: Grammar) -> dict[str, str | bool] | None:
    """The arguments by name, or None when they are not in the plain form."""
    found: dict[str, str | bool] = {}
    words = iter(args)
    for word in words:
        name, value = word, None
        if word.startswith("--") and "=" in word:
            name, value = word.split("=", 1)
        given: str | bool | None
        if name in grammar.flags and value is None:
            key, given = grammar.flags[name], True
        elif name in grammar.values:
            key, given = grammar.values[name], value if value is not None else next(words, None)
        elif not word.startswith("-") and grammar.positional is not None:
            key, given = grammar.positional, word
        else:
            return None
        if given is None or given == "" or (isinstance(given, str) and given.startswith("-")):
            return None
        if key in found:
            return None
        found[key] = given
    return found


def _path(found: Mapping[str, str | bool], key: str) -> Path | None:
    value = found.get(key)
    return Path(value) if isinstance(value, str) else None


def _check(found: Mapping[str, str | bool]) -> str:
    from tidegate.cli.reports import check_report  # noqa: PLC0415

    return check_report(_path(found, "file"), _path(found, "config"))


def _status(found: Mapping[str, str | bool]) -> str:
    from tidegate.cli.reports import status_report  # noqa: PLC0415

    return status_report(found.get("json") is True, _path(found, "socket"), _path(found, "config"))


def _run(found: Mapping[str, str | bool]) -> None:
    from tidegate.cli.launch import run_gateway  # noqa: PLC0415

    run_gateway(_path(found, "config"))


RUNNERS: dict[str, Callable[[Mapping[str, str | bool]], str | None]] = {
    "check": _check,
    "status": _status,
    "run": _run,
}


def run_fast(argv: list[str]) -> bool:
    """Run ``argv`` here if it is one of the plain forms; whether it was."""
    if not argv or argv[0] not in GRAMMARS:
        return False
    found = parse(argv[1:], GRAMMARS[argv[0]])
    if found is None:
        return False
    output = RUNNERS[argv[0]](found)
    if output is not None:
        print(output)
    return True
