"""Building blocks for config schemas: the base section and shared value types.

Every component declares its config as a ``Section`` subclass; the field
docstrings (``description=``) are the documentation and end up in the JSON
Schema that ``tidegate check --schema`` prints.
"""

from __future__ import annotations

import math
import os
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tidegate.config.pydantic_plugins import install as install_plugin_loader

# pydantic looks for its plugins (the `pydantic` entry-point group) when it builds the
# first validator, reading every installed distribution's metadata: ~25 ms of every
# `tidegate check`. tidegate uses none; a value set in the environment is kept (any
# value that names no plugin, e.g. `PYDANTIC_DISABLE_PLUGINS=none`, turns them back on).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
# ... and its plugin loader imports importlib.metadata even so: not on a known pydantic.
install_plugin_loader()

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class Section(BaseModel):
    """A config section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=False, defer_build=True
    )


MAX_SIZE = 2**63 - 1
"""Largest size in bytes (8 EiB): what SQLite and the OS take as a 64-bit integer."""


def _shown(text: str) -> str:
    """A value as quoted in a message: never all of a long one (a line per problem)."""
    return text if len(text) <= 40 else text[:37] + "..."


def parse_duration(value: Any) -> Any:
    if isinstance(value, bool):
        return value  # let the float validator refuse it with its own message
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int past ~1.8e308
            raise ValueError("the number is too large for a duration") from None
        shown = f"{seconds:g}"
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"'{_shown(value)}' is not a duration; write a number of seconds "
                "or e.g. 500ms, 5s, 2m, 1h"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        shown = f"'{_shown(value)}'"
    else:
        return value
    # Infinity and NaN would pass some bounds (and `'1…(400 digits)s'` is infinity).
    if not math.isfinite(seconds):
        raise ValueError(f"{shown} is not a duration: a duration is a finite number of seconds")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(json_schema_extra={"anyOf": [{"type": "number"}, {"type": "string"}]}),
]
"""Seconds, as a number or a string with a unit: ``250ms``, ``5s``, ``2m``, ``1h``, ``1d``."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        min_length=1,
        max_length=64,
        description="Letters, digits, '_', '.', '-'; no MQTT wildcards or '/'.",
    ),
]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")


def parse_size(value: Any) -> Any:
    """``256MB``, ``1GiB``, ``500k``, or a number of bytes."""
    if isinstance(value, bool) or not isinstance(value, str):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"'{_shown(value)}' is not a size; write bytes or e.g. 500kB, 256MB, 1GiB")
    unit = (match.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    factor = 1 if unit in ("", "b") else base ** ("kmgt".index(unit[0]) + 1)
    size = float(match.group(1)) * factor  # a long string of digits is infinity here
    if not size <= MAX_SIZE:
        raise ValueError(f"'{_shown(value)}' is larger than a size can be (8 EiB)")
    return int(size)


ByteSize = Annotated[
    int,
    BeforeValidator(parse_size),
    Field(json_schema_extra={"anyOf": [{"type": "integer"}, {"type": "string"}]}),
]
"""Bytes, as a number or a string with a unit: ``500kB``, ``256MB``, ``1GiB``."""
