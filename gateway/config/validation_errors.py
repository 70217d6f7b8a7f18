"""Pydantic's validation errors as ``FILE:LINE:COL: path: message`` lines.

Each error's location is followed through the YAML data and the schema at
once, so that a message points at the key or value at fault, suggests the
closest known name ("did you mean …?"), and, inside a section that comes in
kinds (a driver's ``type``, a gpio ``mode``, a signal's or window's
``kind``), knows which kind a key belongs to. A key that belongs one section
down is said to belong there, and a check that spans keys reports each of its
problems at its own key (``tidegate.config.located_errors``).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from tidegate.config.located_errors import expand
from tidegate.config.yaml_source import PathKey, SourceMap
from tidegate.errors import ConfigError


def _union_members(annotation: Any) -> tuple[list[Any], str | None]:
    """The members of a union (``Optional``, nested unions flattened) and its discriminator."""
    discriminator: str | None = None
    while get_origin(annotation) is Annotated:
        for meta in get_args(annotation)[1:]:
            if isinstance(getattr(meta, "discriminator", None), str):
                discriminator = meta.discriminator
        annotation = get_args(annotation)[0]
    if get_origin(annotation) not in (Union, types.UnionType):
        return [annotation], discriminator
    members: list[Any] = []
    for arg in get_args(annotation):
        if arg is not type(None):
            inner, inner_discriminator = _union_members(arg)
            members += inner
            discriminator = discriminator or inner_discriminator
    return members, discriminator


def _models(members: Sequence[Any]) -> list[type[BaseModel]]:
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def _tag_values(model: type[BaseModel], key: str) -> tuple[Any, ...]:
    """The values of ``model``'s ``key`` when it is a tag (a Literal), else none."""
    for name, field in model.model_fields.items():
        if (field.alias or name) == key and get_origin(field.annotation) is Literal:
            return get_args(field.annotation)
    return ()


def _tagged(annotation: Any, elem: str | int) -> tuple[Any, str | None] | None:
    """The union members ``elem`` names, when ``elem`` is a discriminated union's tag,
    and the key that holds the tag (None: not known).

    A tag is the bare value (pydantic's ``Field(discriminator=...)``) or reads
    ``key: value`` (``tidegate.drivers.kinds.pick_by``). Several members may
    share a tag (the modes of the gpio driver all have ``type: gpio``): then
    their union, which the next tag in the location narrows.
    """
    members, discriminator = _union_members(annotation)
    models = _models(members)
    if not isinstance(elem, str) or len(models) < (1 if discriminator else 2):
        return None
    key, _, value = elem.partition(": ")
    if value:  # `key: value`
        tag_key: str | None = key
    else:
        tag_key, value = discriminator, elem
    found: list[type[BaseModel]] = []
    for model in models:
        for name, field in model.model_fields.items():
            field_key = field.alias or name
            if tag_key not in (None, field_key) or get_origin(field.annotation) is not Literal:
                continue
            if value in get_args(field.annotation) and model not in found:
                found.append(model)
                tag_key = tag_key or field_key
    if not found:
        return None
    if len(found) == 1:
        return found[0], tag_key
    return Union[tuple(found)], tag_key  # noqa: UP007 - runtime-built union


def _child(annotation: Any, elem: str | int) -> Any:
    """What ``elem`` (a key or an index) holds inside a value of ``annotation``."""
    members, _ = _union_members(annotation)
    models = _models(members)
    if len(models) == 1:
        for name, field in models[0].model_fields.items():
            if (field.alias or name) == elem:
                return field.annotation
        return None
    if len(members) == 1 and get_origin(members[0]) in (list, dict) and get_args(members[0]):
        return get_args(members[0])[-1]
    return annotation  # a label of a union without tags: the value is still the union's


@dataclass(frozen=True, slots=True)
class _Pick:
    """A discriminated union the location went through: its members, the tag's key."""

    union: Any
    key: str | None


def _walk(
    root: type[BaseModel], data: Any, loc: Sequence[str | int]
) -> tuple[PathKey, str | int | None, Any, _Pick | None]:
    """Follow pydantic's loc through the YAML data and the schema together.

    Returns the path that exists in the data, the last loc element if it does
    not (a missing or unknown key), the schema of the value the loc ends at,
    and the last discriminated union on the way (which kind the value is).
    A discriminated union's tag in the loc selects a member and is not a key,
    even where the data has a key of the same name (``window: {kind: count,
    count: 5}``); other union labels are skipped.
    """
    path: list[str | int] = []
    current = data
    annotation: Any = root
    missing: str | int | None = None
    pick: _Pick | None = None
    for index, elem in enumerate(loc):
        tagged = _tagged(annotation, elem)
        if tagged is not None:
            pick = _Pick(annotation, tagged[1])
            annotation = tagged[0]
            continue
        if isinstance(current, dict) and elem in current:
            current = current[elem]
            path.append(elem)
        elif isinstance(current, list) and isinstance(elem, int) and 0 <= elem < len(current):
            current = current[elem]
            path.append(elem)
        elif index == len(loc) - 1:
            missing = elem
        annotation = _child(annotation, elem)
    return tuple(path), missing, annotation, pick


def _kinds_with(pick: _Pick | None, key: str) -> str:
    """``; `per_pulse` is a key of mode: counter`` when other kinds of the union
    the value was picked from take the key it may not have."""
    if pick is None or pick.key is None:
        return ""
    kinds = [
        str(value)
        for model in _models(_union_members(pick.union)[0])
        if key in _allowed_keys(model)
        for value in _tag_values(model, pick.key)
    ]
    return f"; `{key}` is a key of {pick.key}: {', '.join(kinds)}" if kinds else ""


def _unknown_kind(
    error: Any, key: str, where_path: PathKey, annotation: Any, smap: SourceMap
) -> tuple[PathKey, str] | None:
    """A ``pick_by`` union's error (``unknown_<key>``): at the value, with the kinds."""
    given = error.get("input")
    models = _models(_union_members(annotation)[0])
    known = [str(v) for model in models for v in _tag_values(model, key)]
    if not isinstance(given, dict) or not known:
        return None
    label = _dotted((*where_path, key))
    if key not in given:
        where = smap.locate(where_path)
        return (*where_path, key), f"{where}: {label}: missing required key '{key}'"
    value = given[key]
    where = smap.locate((*where_path, key))
    if not isinstance(value, str):
        return where_path, (
            f"{where}: {label}: must be one of: {', '.join(known)}, got {_describe(value)}"
        )
    return where_path, (
        f"{where}: {label}: unknown {key} '{value}'{_did_you_mean(value, known)}; "
        f"known: {', '.join(known)}"
    )


def _allowed_keys(annotation: Any) -> list[str]:
    """The keys a mapping of this schema takes, as written in YAML."""
    models = _models(_union_members(annotation)[0])
    if len(models) != 1:
        return []
    return [field.alias or name for name, field in models[0].model_fields.items()]


def _homes(annotation: Any, key: str) -> list[str]:
    """The sections of a mapping of this schema whose keys include ``key``: ``under
    `sim:` ``, ``in an item of `devices:` (indented under it)``."""
    homes: list[str] = []
    models = _models(_union_members(annotation)[0])
    if len(models) != 1:
        return homes
    for name, field in models[0].model_fields.items():
        child, listed = field.annotation, False
        members, _ = _union_members(child)
        if len(members) == 1 and get_origin(members[0]) is list and get_args(members[0]):
            child, listed = get_args(members[0])[0], True
        owners = _models(_union_members(child)[0])
        if any(key in (f.alias or n for n, f in m.model_fields.items()) for m in owners):
            section = field.alias or name
            homes.append(
                f"in an item of `{section}:` (indented under it)"
                if listed
                else f"under `{section}:`"
            )
    return homes


_SAME_AS = {
    # Type names other languages and manuals use, for the ones a Literal takes.
    "float": "f32", "float32": "f32", "real": "f32", "single": "f32",
    "double": "f64", "float64": "f64",
    "int16": "i16", "short": "i16", "uint16": "u16", "word": "u16",
    "int32": "i32", "uint32": "u32", "dword": "u32", "int64": "i64", "uint64": "u64",
    "int8": "i8", "uint8": "u8", "byte": "u8",
    "str": "string", "text": "string", "boolean": "bool",
}


def _same_as(word: str, options: Sequence[str]) -> str:
    """`` (did you mean 'f32'?)`` for ``float``: another name of an allowed value."""
    meant = _SAME_AS.get(word.strip().lower())
    return f" (did you mean '{meant}'?)" if meant in options else ""


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for elem in path:
        out += f"[{elem}]" if isinstance(elem, int) else (f".{elem}" if out else str(elem))
    return out


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and value.bit_length() > 64:
        # repr() of a huge int is slow, and fails past 4,300 digits.
        return f"an integer of {value.bit_length():,} bits"
    if isinstance(value, str | bytes):
        value = value[:40]  # all that is shown
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _message(error: Any, root: type[BaseModel], data: Any, smap: SourceMap) -> tuple[PathKey, str]:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    kind: str = error["type"]
    path, missing, annotation, _ = _walk(root, data, loc)
    msg: str = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden" and missing is None and path:
        key = path[-1]
        _, _, parent, pick = _walk(root, data, loc[:-1])
        allowed = _allowed_keys(parent)
        kinds = _kinds_with(pick, str(key))
        homes = [] if kinds else _homes(parent, str(key))
        # A key of a section one level down was dedented: say where it goes, not a
        # look-alike of this level's keys.
        hint = (
            f" here: it belongs {' or '.join(homes)}"
            if homes
            else _did_you_mean(str(key), allowed)
        )
        where = smap.locate(path, key=True)
        listing = f"; allowed: {', '.join(allowed)}" if allowed and not hint and not kinds else ""
        return path, f"{where}: {_dotted(path)}: unknown key '{key}'{hint}{kinds}{listing}"
    if kind == "missing":
        name = missing if missing is not None else (loc[-1] if loc else "?")
        where = smap.locate(path)
        full = (*path, name) if isinstance(name, str) else path
        return full, f"{where}: {_dotted(full)}: missing required key '{name}'"
    if kind.startswith("unknown_") and missing is None:
        found = _unknown_kind(error, kind.removeprefix("unknown_"), path, annotation, smap)
        if found is not None:
            return found
    where = smap.locate(path)
    label = _dotted(path) or "(top level)"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(error["ctx"]["discriminator"]).strip("'")
        if kind == "union_tag_not_found":
            return path, f"{where}: {label}: missing required key '{key}'"
        tag = str(error["ctx"]["tag"])
        known = [t.strip(" '") for t in str(error["ctx"]["expected_tags"]).split(",")]
        what, listing = key, "known"
        if path[:1] == ("drivers",) and len(path) == 2:
            what, listing, known = "driver type", "known types", sorted(known)
        where = smap.locate((*path, key))
        return path, (
            f"{where}: {label}.{key}: unknown {what} '{tag}'{_did_you_mean(tag, known)}; "
            f"{listing}: {', '.join(known)}"
        )
    if kind.endswith("_type") or kind in ("literal_error", "enum"):
        got = _describe(error.get("input"))
        hint = ""
        if kind == "literal_error" and isinstance(error.get("input"), str):
            expected = [
                s.strip(" '") for s in str(error["ctx"]["expected"]).replace(" or ", ",").split(",")
            ]
            hint = _did_you_mean(error["input"], expected) or _same_as(error["input"], expected)
        return path, f"{where}: {label}: {msg[0].lower()}{msg[1:]}, got {got}{hint}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return (
            path,
            f"{where}: {label}: {msg[0].lower()}{msg[1:]}, got {_describe(error.get('input'))}",
        )
    return path, f"{where}: {label}: {msg[0].lower()}{msg[1:]}"


def line_col(message: str) -> tuple[int, int]:
    parts = message.split(":", 3)
    try:
        return int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return (0, 0)


def _located(error: Any, root: type[BaseModel], data: Any, smap: SourceMap) -> list[str] | None:
    """A validator's ``LocatedError``/``Problems`` (tidegate.config.located_errors):
    one line each, at its key below the error's location (the key, not its value,
    when the value is a section: the line that names it)."""
    problems = expand(error.get("ctx", {}).get("error")) if error["type"] == "value_error" else None
    if problems is None:
        return None
    lines: list[str] = []
    for problem in problems:
        loc = (*error["loc"], *problem.at)
        path, missing, _, _ = _walk(root, data, loc)
        key = missing is None and bool(problem.at and path) and isinstance(path[-1], str) and (
            problem.key or isinstance(_value_at(data, path), dict | list)
        )
        where = smap.locate(path, key=key)
        full = (*path, missing) if missing is not None else path
        lines.append(f"{where}: {_dotted(full) or '(top level)'}: {problem}")
    return lines


def _value_at(data: Any, path: PathKey) -> Any:
    for elem in path:
        data = data[elem]
    return data


def translate_validation_error(
    exc: ValidationError, root: type[BaseModel], data: Any, smap: SourceMap
) -> ConfigError:
    seen: set[PathKey] = set()
    messages: list[str] = []
    for error in exc.errors():
        located = _located(error, root, data, smap)
        if located is not None:
            messages += [line for line in located if line not in messages]
            continue
        path, message = _message(error, root, data, smap)
        # A union reports one error per member; one line per place is enough.
        if path in seen and error["type"] not in ("extra_forbidden", "missing"):
            continue
        seen.add(path)
        messages.append(message)
    return ConfigError(messages)
