"""Topic filters and the templates that take an event's source and name from a topic.

A subscription's ``source`` and ``name`` are small templates over the levels of the
topic a message arrived on. For ``tele/kitchen/SENSOR`` received on the filter
``tele/+/SENSOR``:

- ``{topic[1]}`` is ``kitchen`` (levels count from 0; ``{topic[-1]}`` is the last);
- ``{topic}`` is the whole topic, ``{driver}`` the driver instance's name;
- in ``name`` only, ``{field}`` is the name the parser gave the value.

Literal text around placeholders is kept: ``"tasmota-{topic[1]}"``. A rendered value
becomes a valid event name: every run of characters outside ``A-Z a-z 0-9 _ . -``
becomes ``_`` and leading ``_ . -`` are dropped (``Kitchen Sensor`` →
``Kitchen_Sensor``), so a device's topic can never inject ``/``, ``+`` or ``#`` into
the topics tidegate publishes. A level the filter guarantees (``+`` or a literal
level) is checked when the config is loaded; a level beyond a ``#`` is checked per
message, and a message without it is rejected with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LEVEL = re.compile(r"^topic\[(-?\d+)\]$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
NAME_MAX = 64

SOURCE_PLACEHOLDERS = ("{topic[N]}", "{topic}", "{driver}")
NAME_PLACEHOLDERS = (*SOURCE_PLACEHOLDERS, "{field}")


class TopicError(ValueError):
    """A filter or template that cannot work; the message is for the user."""


class MissingLevel(Exception):
    """The topic has fewer levels than a template reads."""


def check_filter(topic_filter: str) -> list[str]:
    """Check an MQTT topic filter (MQTT 3.1.1 §4.7); return its levels."""
    if not topic_filter:
        raise TopicError("a topic filter cannot be empty")
    if "\x00" in topic_filter:
        raise TopicError("a topic filter cannot contain NUL")
    if len(topic_filter.encode()) > 65535:
        raise TopicError("a topic filter must be at most 65535 bytes")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TopicError(
                f"'#' must be a whole level and the last one (in '{topic_filter}')"
            )
        if "+" in level and level != "+":
            raise TopicError(f"'+' must be a whole level (in '{topic_filter}')")
    return levels


def clean_name(text: str) -> str | None:
    """``text`` made into a valid event name, or None when nothing usable is left."""
    name = _NOT_NAME.sub("_", text).lstrip("_.-")[:NAME_MAX]
    return name or None


@dataclass(frozen=True, slots=True)
class _Level:
    """``{topic[N]}``."""

    index: int


@dataclass(frozen=True, slots=True)
class _WholeTopic:
    """``{topic}``."""


@dataclass(frozen=True, slots=True)
class _Field:
    """``{field}``."""


_Part = str | _Level | _WholeTopic | _Field
"""A template piece: literal text ({driver} is filled in when compiling) or a slot."""


class TopicTemplate:
    """A compiled ``source:`` or ``name:`` template (see the module docstring)."""

    __slots__ = ("_parts", "text", "uses_field")

    def __init__(
        self, text: str, *, driver: str, filter_levels: Sequence[str], allow_field: bool
    ) -> None:
        self.text = text
        stripped = _PLACEHOLDER.sub("", text)
        if "{" in stripped or "}" in stripped:
            raise TopicError(f"unbalanced '{{' or '}}' in '{text}'")
        parts: list[_Part] = []
        position = 0
        for match in _PLACEHOLDER.finditer(text):
            parts.append(text[position : match.start()])
            parts.append(self._placeholder(match.group(1), driver, filter_levels, allow_field))
            position = match.end()
        parts.append(text[position:])
        merged: list[_Part] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            elif part != "":
                merged.append(part)
        self._parts = tuple(merged)
        self.uses_field = any(isinstance(part, _Field) for part in merged)

    def _placeholder(
        self, inner: str, driver: str, filter_levels: Sequence[str], allow_field: bool
    ) -> _Part:
        if inner == "driver":
            return driver
        if inner == "topic":
            return _WholeTopic()
        if inner == "field":
            if not allow_field:
                raise TopicError("{field} is for `name`, not `source`")
            return _Field()
        level = _LEVEL.match(inner.replace(" ", ""))
        if level is None:
            allowed = NAME_PLACEHOLDERS if allow_field else SOURCE_PLACEHOLDERS
            raise TopicError(
                f"unknown placeholder '{{{inner}}}' in '{self.text}'; "
                f"use {', '.join(allowed)} (N counts topic levels from 0)"
            )
        index = int(level.group(1))
        if filter_levels[-1] != "#":
            # Without '#', every matching topic has exactly the filter's levels.
            count = len(filter_levels)
            if not -count <= index < count:
                raise TopicError(
                    f"{{topic[{index}]}}: topics matching '{'/'.join(filter_levels)}' have "
                    f"{count} levels ({{topic[0]}}..{{topic[{count - 1}]}})"
                )
        return _Level(index)

    def render(self, levels: Sequence[str], topic: str, field: str = "") -> str:
        """The value before cleaning; raises ``MissingLevel`` (possible only after '#')."""
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, _Level):
                try:
                    out.append(levels[part.index])
                except IndexError:
                    raise MissingLevel(
                        f"'{self.text}' reads level {part.index}, but '{topic}' has "
                        f"{len(levels)} levels"
                    ) from None
            elif isinstance(part, _WholeTopic):
                out.append(topic)
            else:
                out.append(field)
        return "".join(out)
