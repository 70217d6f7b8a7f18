"""Text with ``{argument}`` placeholders (``{value:.1f}`` takes a format spec): an MQTT
action's topic and payload. Checked when the config loads; filled from a call's
checked arguments."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator

from tidegate.errors import ActionRefused

_FORMATTER = string.Formatter()


def placeholders(text: str) -> frozenset[str]:
    """The argument names ``text`` uses; raises ValueError for what is not a plain name
    (``{a.b}``, ``{a[0]}``, ``{}``, an unmatched brace)."""
    names = set()
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise ValueError(f"{exc} (write {{{{ and }}}} for a literal brace)") from None
    for _, field, _, conversion in parts:
        if field is None:
            continue
        if not field.isidentifier():
            raise ValueError(
                f"placeholder {{{field}}} must be an argument's name (no '.', '[', or empty)"
            )
        if conversion is not None:
            raise ValueError(f"placeholder {{{field}!{conversion}}}: no conversions")
        names.add(field)
    return frozenset(names)


def _valid(text: str) -> str:
    placeholders(text)
    return text


TemplateText = Annotated[str, AfterValidator(_valid)]
"""Text whose placeholders are argument names, checked at load."""


def fill(action: str, text: str, args: Mapping[str, Any]) -> str:
    """``text`` with its placeholders filled; a value its format spec does not take is
    refused (``bad_arguments``), not sent half made."""
    try:
        return text.format_map(
            {k: ("true" if v is True else "false" if v is False else v) for k, v in args.items()}
        )
    except (KeyError, ValueError, TypeError) as exc:
        message = f"{action}: cannot fill {text!r}: {exc}"
        raise ActionRefused(message, reason="bad_arguments") from None
