"""Loading the configuration: YAML → validated, typed ``GatewayConfig``.

Every problem found is reported as ``FILE:LINE:COL: path: message``, all of
them at once, with "did you mean …?" for misspelled keys and driver types.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError, create_model

from tidegate.config.paths import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    config_relative,
    require_config_file,
    resolve_config_path,
)
from tidegate.config.schema import GatewayConfig
from tidegate.config.yaml_source import PathKey, SourceMap, load_yaml_file, load_yaml_text
from tidegate.driver_kinds import driver_types
from tidegate.errors import ConfigError

__all__ = [  # the first three lived here before tidegate.config.paths
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "json_schema",
    "load_config",
    "load_config_text",
    "resolve_config_path",
    "translate_validation_error",
]


@cache
def config_model(kinds: tuple[str, ...] | None = None, rules: bool = True) -> type[GatewayConfig]:
    """GatewayConfig with ``drivers`` typed as the union of the driver kinds ``kinds``
    (every kind when None: the schema, the reference, and files with a type that is
    not known), and ``rules`` with the rule schema when ``rules`` (a file without
    rules does not import the rule engine's schemas)."""
    found = driver_types()
    names = tuple(found) if kinds is None else kinds
    configs = tuple(found[name].config_type for name in names)
    # A discriminated union even of one kind: the same errors, at the same places.
    item: Any = Annotated[Union[configs], Field(discriminator="type")]  # noqa: UP007 - runtime-built union
    rule: Any = Any
    if rules:
        from tidegate.rules.config import RuleConfig  # noqa: PLC0415 - only files with rules

        rule = RuleConfig
    model: type[GatewayConfig] = create_model(
        "TidegateConfig",
        __base__=GatewayConfig,
        drivers=(list[item], Field(min_length=1, description="Event sources.")),
        rules=(
            list[rule],
            Field(default_factory=list, description="Rules, in order (see the rules section)."),
        ),
    )
    return model


def used_driver_kinds(data: dict[str, Any]) -> tuple[str, ...] | None:
    """The driver kinds a file's ``drivers:`` names, when each item names a known one;
    None (validate against every kind: the errors list them) otherwise."""
    items = data.get("drivers")
    if not isinstance(items, list) or not items:
        return None
    names = set()
    known = driver_types()
    for item in items:
        name = item.get("type") if isinstance(item, dict) else None
        if not isinstance(name, str) or name not in known:
            return None
        names.add(name)
    return tuple(sorted(names))


def json_schema() -> dict[str, Any]:
    """JSON Schema of the whole file, for editors."""
    schema = config_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tidegate configuration"
    return schema


# --- error translation -------------------------------------------------------


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


def _tagged(annotation: Any, elem: str | int) -> type[BaseModel] | None:
    """The union member ``elem`` names, when ``elem`` is a discriminated union's tag."""
    members, discriminator = _union_members(annotation)
    models = _models(members)
    if not isinstance(elem, str) or len(models) < (1 if discriminator else 2):
        return None
    found = []
    for model in models:
        for name, field in model.model_fields.items():
            key = field.alias or name
            if discriminator not in (None, key) or get_origin(field.annotation) is not Literal:
                continue
            if elem in get_args(field.annotation):
                found.append(model)
    return found[0] if len(found) == 1 else None


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


def _walk(
    root: type[BaseModel], data: Any, loc: Sequence[str | int]
) -> tuple[PathKey, str | int | None, Any]:
    """Follow pydantic's loc through the YAML data and the schema together.

    Returns the path that exists in the data, the last loc element if it does
    not (a missing or unknown key), and the schema of the value the loc ends at.
    A discriminated union's tag in the loc selects a member and is not a key,
    even where the data has a key of the same name (``window: {kind: count,
    count: 5}``); other union labels are skipped.
    """
    path: list[str | int] = []
    current = data
    annotation: Any = root
    missing: str | int | None = None
    for index, elem in enumerate(loc):
        member = _tagged(annotation, elem)
        if member is not None:
            annotation = member
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
    return tuple(path), missing, annotation


def _allowed_keys(annotation: Any) -> list[str]:
    """The keys a mapping of this schema takes, as written in YAML."""
    models = _models(_union_members(annotation)[0])
    if len(models) != 1:
        return []
    return [field.alias or name for name, field in models[0].model_fields.items()]


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
    path, missing, _ = _walk(root, data, loc)
    msg: str = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden" and missing is None and path:
        key = path[-1]
        allowed = _allowed_keys(_walk(root, data, loc[:-1])[2])
        hint = _did_you_mean(str(key), allowed)
        where = smap.locate(path, key=True)
        listing = f"; allowed: {', '.join(allowed)}" if allowed and not hint else ""
        return path, f"{where}: {_dotted(path)}: unknown key '{key}'{hint}{listing}"
    if kind == "missing":
        name = missing if missing is not None else (loc[-1] if loc else "?")
        where = smap.locate(path)
        full = (*path, name) if isinstance(name, str) else path
        return full, f"{where}: {_dotted(full)}: missing required key '{name}'"
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
            hint = _did_you_mean(error["input"], expected)
        return path, f"{where}: {label}: {msg[0].lower()}{msg[1:]}, got {got}{hint}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return (
            path,
            f"{where}: {label}: {msg[0].lower()}{msg[1:]}, got {_describe(error.get('input'))}",
        )
    return path, f"{where}: {label}: {msg[0].lower()}{msg[1:]}"


def _line_col(message: str) -> tuple[int, int]:
    parts = message.split(":", 3)
    try:
        return int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return (0, 0)


def translate_validation_error(
    exc: ValidationError, root: type[BaseModel], data: Any, smap: SourceMap
) -> ConfigError:
    seen: set[PathKey] = set()
    messages: list[str] = []
    for error in exc.errors():
        path, message = _message(error, root, data, smap)
        # A union reports one error per member; one line per place is enough.
        if path in seen and error["type"] not in ("extra_forbidden", "missing"):
            continue
        seen.add(path)
        messages.append(message)
    return ConfigError(messages)


# --- checks that span several keys ------------------------------------------------


def _check_unique(data: Any, smap: SourceMap, section: str, what: str) -> list[str]:
    items = data.get(section) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    seen: dict[str, int] = {}
    problems: list[str] = []
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            where = smap.locate((section, index, "name"))
            problems.append(
                f"{where}: {section}[{index}].name: duplicate {what} name '{name}' "
                f"(first used by {section}[{seen[name]}])"
            )
        else:
            seen[name] = index
    return problems


def _resolve_paths(config: GatewayConfig, base: Path) -> GatewayConfig:
    """Make relative paths relative to the config file, not the working directory."""

    def absolute(p: Path | None) -> Path | None:
        return None if p is None else config_relative(p, base)

    gateway = config.gateway.model_copy(update={"data_dir": absolute(config.gateway.data_dir)})
    buffer = config.buffer.model_copy(update={"path": absolute(config.buffer.path)})
    control = config.control.model_copy(update={"socket": absolute(config.control.socket)})
    mqtt = config.mqtt
    if mqtt is not None:
        tls = mqtt.tls
        if tls is not None:
            tls = tls.model_copy(
                update={
                    "ca_file": absolute(tls.ca_file),
                    "cert_file": absolute(tls.cert_file),
                    "key_file": absolute(tls.key_file),
                }
            )
        mqtt = mqtt.model_copy(update={"tls": tls, "password_file": absolute(mqtt.password_file)})
    return config.model_copy(
        update={"gateway": gateway, "buffer": buffer, "control": control, "mqtt": mqtt}
    )


def validate_data(data: Any, smap: SourceMap, base: Path) -> GatewayConfig:
    if data is None:
        raise ConfigError([f"{smap.file}:1:1: the file is empty; it needs at least `drivers:`"])
    if not isinstance(data, dict):
        raise ConfigError([f"{smap.locate(())}: the top level must be a mapping of sections"])
    has_rules = "rules" in data or "rules_dir" in data
    model = config_model(used_driver_kinds(data), has_rules)
    problems = _check_unique(data, smap, "drivers", "driver") + _check_unique(
        data, smap, "rules", "rule"
    )
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        from tidegate.rules.expr.location import split_expression_errors  # noqa: PLC0415

        messages, rest = split_expression_errors(exc, smap)
        if rest is not None:
            messages += translate_validation_error(rest, model, data, smap).messages
        messages += problems
        raise ConfigError(sorted(messages, key=_line_col)) from None
    if problems:
        raise ConfigError(problems)
    if has_rules:
        from tidegate.rules.loader import load_rules  # noqa: PLC0415 - only files with rules

        config = config.model_copy(
            update={"rules": load_rules(config.rules, smap, base, config.rules_dir)}
        )
    return _resolve_paths(config, base)


def load_config(path: Path) -> GatewayConfig:
    """Load and validate a config file; raise ConfigError listing every problem."""
    data, smap = load_yaml_file(require_config_file(path))
    return validate_data(data, smap, path.parent.resolve())


def load_config_text(text: str, name: str = "<config>", base: Path | None = None) -> GatewayConfig:
    data, smap = load_yaml_text(text, name)
    return validate_data(data, smap, base or Path.cwd())
