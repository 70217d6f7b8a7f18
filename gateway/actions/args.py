"""An action's arguments: what a call may carry, declared in the config and checked
before anything moves (types, ranges, choices)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from tidegate.config.types import Section
from tidegate.errors import ActionRefused

ArgType = Literal["bool", "int", "number", "string"]
Scalar = bool | int | float | str

MAX_ARGS_BYTES = 16_384
"""A string argument's longest, in characters; a command's arguments are small."""


class ArgSpec(Section):
    """One argument: its type, and the values it may take."""

    type: ArgType = Field(description="bool, int, number (int or float) or string.")
    min: float | None = Field(None, description="int/number: the smallest value taken.")
    max: float | None = Field(None, description="int/number: the largest value taken.")
    choices: list[Scalar] | None = Field(
        None, min_length=1, description="The only values taken (an enumeration)."
    )
    max_length: int = Field(256, gt=0, le=MAX_ARGS_BYTES, description="string: longest taken.")
    pattern: str | None = Field(
        None,
        description="string: a regular expression the whole value must match, e.g. "
        "`[A-Za-z0-9 ]*` (keeps line breaks and control characters out of a frame).",
    )
    default: Scalar | None = Field(
        None, description="Taken when a call leaves the argument out; unset: it is required."
    )

    @model_validator(mode="after")
    def _fits(self) -> ArgSpec:
        if self.pattern is not None:
            if self.type != "string":
                raise ValueError(f"`pattern` is for strings; this argument is a {self.type}")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r}: {exc}") from None
        if (self.min is not None or self.max is not None) and self.type not in ("int", "number"):
            raise ValueError(f"`min`/`max` bound numbers; this argument is a {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        for value in [*(self.choices or []), *([] if self.default is None else [self.default])]:
            problem = _problem(self, value)
            if problem is not None:
                raise ValueError(f"{value!r}: {problem}")
        return self


def _problem(spec: ArgSpec, value: object) -> str | None:
    """What is wrong with ``value`` for ``spec``; None when it fits."""
    kind = spec.type
    if kind == "bool":
        if not isinstance(value, bool):
            return "must be true or false"
    elif kind in ("int", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {'an integer' if kind == 'int' else 'a number'}"
        if kind == "int" and isinstance(value, float) and not value.is_integer():
            return "must be an integer"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if spec.min is not None and value < spec.min:
            return f"is below the minimum {spec.min:g}"
        if spec.max is not None and value > spec.max:
            return f"is above the maximum {spec.max:g}"
    elif not isinstance(value, str):
        return "must be a string"
    elif len(value) > spec.max_length:
        return f"is longer than {spec.max_length} characters"
    elif spec.pattern is not None and re.fullmatch(spec.pattern, value) is None:
        return f"does not match {spec.pattern!r}"
    if spec.choices is not None and value not in spec.choices:
        return f"must be one of {', '.join(map(repr, spec.choices))}"
    return None


def check_args(
    action: str, specs: Mapping[str, ArgSpec], given: Mapping[str, Any]
) -> dict[str, Scalar]:
    """``given`` checked against ``specs``, with defaults filled in; raises
    ``ActionRefused(reason="bad_arguments")`` naming the first argument that does not fit."""
    unknown = sorted(set(given) - set(specs))
    if unknown:
        known = ", ".join(sorted(specs)) or "none"
        raise ActionRefused(
            f"{action}: no argument {unknown[0]!r} (it takes: {known})", reason="bad_arguments"
        )
    out: dict[str, Scalar] = {}
    for name, spec in specs.items():
        if name not in given:
            if spec.default is None:
                raise ActionRefused(
                    f"{action}: argument {name!r} is required", reason="bad_arguments"
                )
            out[name] = spec.default
            continue
        value = given[name]
        problem = _problem(spec, value)
        if problem is not None:
            raise ActionRefused(f"{action}: argument {name!r} {problem}", reason="bad_arguments")
        out[name] = float(value) if spec.type == "number" and isinstance(value, int) else value
    return out
