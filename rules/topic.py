"""MQTT topic templates: ``site/{gateway}/{source}/{name}``.

A template is parsed once at load. Placeholders are ``{gateway}``,
``{prefix}`` (the configured topic prefix), ``{source}``, ``{name}``,
``{unit}`` and ``{tags.<tag>}``. Inserted values have MQTT's special
characters (``/ + #``) replaced by ``_`` so an event can never publish
outside its template's shape; a missing unit or tag renders as ``_``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from tidegate.event import Event

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_STATIC = ("gateway", "prefix")
_FIELDS = ("source", "name", "unit")
_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})
PLACEHOLDERS = ("gateway", "prefix", "source", "name", "unit", "tags.<tag>")


class TopicTemplateError(ValueError):
    """A template that cannot produce valid topics."""


def _safe(value: str | None) -> str:
    if not value:
        return "_"
    return value.translate(_UNSAFE)


def check_template(template: str) -> None:
    """Raise TopicTemplateError with a user-facing message if ``template`` is invalid."""
    if not template:
        raise TopicTemplateError("a topic template cannot be empty")
    if len(template.encode()) > 1024:
        raise TopicTemplateError("a topic template must be at most 1024 bytes")
    stripped = _PLACEHOLDER.sub("x", template)
    if "{" in stripped or "}" in stripped:
        raise TopicTemplateError(f"unbalanced '{{' or '}}' in topic template '{template}'")
    if "+" in stripped or "#" in stripped:
        raise TopicTemplateError(
            f"topic template '{template}' contains an MQTT wildcard (+ or #); "
            "wildcards are for subscriptions, not for publishing"
        )
    if template.startswith("$"):
        raise TopicTemplateError("topics starting with '$' are reserved for the broker")
    for match in _PLACEHOLDER.finditer(template):
        field = match.group(1)
        if field in _STATIC or field in _FIELDS:
            continue
        if field.startswith("tags.") and len(field) > 5:
            continue
        close = difflib.get_close_matches(field, [*_STATIC, *_FIELDS], n=1)
        hint = f" (did you mean '{{{close[0]}}}'?)" if close else ""
        raise TopicTemplateError(
            f"unknown placeholder '{{{field}}}' in topic template{hint}; "
            f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        )


TopicRenderer = Callable[[Event], str]


def _tag_renderer(tag: str) -> Callable[[Event], str]:
    def render_tag(e: Event) -> str:
        return _safe(e.tags.get(tag) if e.tags else None)

    return render_tag


def compile_template(template: str, *, gateway: str, prefix: str = "") -> TopicRenderer:
    """Turn a checked template into a function from event to topic string."""
    check_template(template)
    static = {"gateway": _safe(gateway), "prefix": prefix}
    parts: list[str | Callable[[Event], str]] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(template[pos : match.start()])
        field = match.group(1)
        if field in static:
            parts.append(static[field])
        elif field == "source":
            parts.append(lambda e: _safe(e.source))
        elif field == "name":
            parts.append(lambda e: _safe(e.name))
        elif field == "unit":
            parts.append(lambda e: _safe(e.unit))
        else:
            parts.append(_tag_renderer(field.removeprefix("tags.")))
        pos = match.end()
    parts.append(template[pos:])
    # Merge adjacent constant pieces so rendering does the least work per event.
    merged: list[str | Callable[[Event], str]] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + part
        elif part != "":
            merged.append(part)
    if all(isinstance(p, str) for p in merged):
        constant = "".join(p for p in merged if isinstance(p, str))
        return lambda e: constant

    def render(e: Event) -> str:
        return "".join(p if isinstance(p, str) else p(e) for p in merged)

    uses = {m.group(1) for m in _PLACEHOLDER.finditer(template)}
    if uses <= {"gateway", "prefix", "source", "name"}:
        # Topics then depend on (source, name) only: remember them, a site has few.
        cache: dict[tuple[str, str], str] = {}

        def render_cached(e: Event) -> str:
            key = (e.source, e.name)
            topic = cache.get(key)
            if topic is None:
                topic = render(e)
                if len(cache) < 65536:
                    cache[key] = topic
            return topic

        return render_cached
    return render
