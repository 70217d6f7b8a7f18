"""Loading the configuration: YAML → validated, typed ``GatewayConfig``.

Every problem found is reported as ``FILE:LINE:COL: path: message``, all of
them at once, with "did you mean …?" for misspelled keys and driver types.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError, create_model

from tidegate.config.schema import GatewayConfig
from tidegate.config.yaml_source import PathKey, SourceMap, load_yaml_file, load_yaml_text
from tidegate.driver_kinds import driver_types
from tidegate.errors import ConfigError
from tidegate.rules.expr.location import split_expression_errors
from tidegate.rules.loader import load_rules

DEFAULT_CONFIG_PATH = Path("/etc/tidegate/tidegate.yaml")
CONFIG_ENV = "TIDEGATE_CONFIG"


def resolve_config_path(option: Path | None) -> Path:
    """``-c`` wins, then ``$TIDEGATE_CONFIG``, then /etc/tidegate/tidegate.yaml."""
    if option is not None:
        return option
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


@cache
def config_model() -> type[GatewayConfig]:
    """GatewayConfig with ``drivers`` typed as the union of every driver kind."""
    configs = tuple(d.config_type for d in driver_types().values())
    item: Any
    if len(configs) == 1:
        item = configs[0]
    else:
        item = Annotated[Union[configs], Field(discriminator="type")]  # noqa: UP007 - runtime-built union
    model: type[GatewayConfig] = create_model(
        "TidegateConfig",
        __base__=GatewayConfig,
        drivers=(list[item], Field(min_length=1, description="Event sources.")),
    )
    return model


def json_schema() -> dict[str, Any]:
    """JSON Schema of the whole file, for editors."""
    schema = config_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tidegate configuration"
    return schema


# --- error translation -------------------------------------------------------


def _data_path(data: Any, loc: Sequence[str | int]) -> tuple[PathKey, str | int | None]:
    """Map pydantic's loc to the path in the YAML data, dropping union labels.

    Returns the path that exists in the data and the first loc element that
    does not (a missing or unknown key), if any.
    """
    path: list[str | int] = []
    current = data
    missing: str | int | None = None
    for index, elem in enumerate(loc):
        if isinstance(current, dict) and elem in current:
            current = current[elem]
            path.append(elem)
        elif isinstance(current, list) and isinstance(elem, int) and 0 <= elem < len(current):
            current = current[elem]
            path.append(elem)
        elif index == len(loc) - 1:
            missing = elem
    return tuple(path), missing


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _model_for(annotation: Any, tag: str | int | None = None) -> Any:
    """Step into Optional/union members; pick a union member by its type tag."""
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [_unwrap(a) for a in get_args(annotation) if a is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if tag is not None:
            for m in models:
                field = m.model_fields.get("type")
                if field is not None and get_args(field.annotation) == (tag,):
                    return m
        if len(models) == 1:
            return models[0]
        if len(members) == 1:
            return members[0]
    return annotation


def _allowed_keys(root: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    current: Any = root
    for elem in loc:
        current = _model_for(current, elem)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if isinstance(elem, str) and elem in current.model_fields:
                current = current.model_fields[elem].annotation
            continue  # a union tag or a label
        origin = get_origin(current)
        if origin in (list, dict) and get_args(current):
            current = get_args(current)[-1]
    current = _model_for(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


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
    path, missing = _data_path(data, loc)
    msg: str = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden" and missing is None and path:
        key = path[-1]
        allowed = _allowed_keys(root, loc[:-1])
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
    if kind == "union_tag_invalid":
        tag = str(error["ctx"]["tag"])
        known = sorted(driver_types())
        hint = _did_you_mean(tag, known)
        where = smap.locate((*path, "type"))
        return path, (
            f"{where}: {label}.type: unknown driver type '{tag}'{hint}; "
            f"known types: {', '.join(known)}"
        )
    if kind == "union_tag_not_found":
        return path, f"{where}: {label}: missing required key 'type'"
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
        if p is None:
            return None
        p = p.expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    gateway = config.gateway.model_copy(update={"data_dir": absolute(config.gateway.data_dir)})
    buffer = config.buffer.model_copy(update={"path": absolute(config.buffer.path)})
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
    return config.model_copy(update={"gateway": gateway, "buffer": buffer, "mqtt": mqtt})


def validate_data(data: Any, smap: SourceMap, base: Path) -> GatewayConfig:
    if data is None:
        raise ConfigError([f"{smap.file}:1:1: the file is empty; it needs at least `drivers:`"])
    if not isinstance(data, dict):
        raise ConfigError([f"{smap.locate(())}: the top level must be a mapping of sections"])
    model = config_model()
    problems = _check_unique(data, smap, "drivers", "driver") + _check_unique(
        data, smap, "rules", "rule"
    )
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        messages, rest = split_expression_errors(exc, smap)
        if rest is not None:
            messages += translate_validation_error(rest, model, data, smap).messages
        messages += problems
        raise ConfigError(sorted(messages, key=_line_col)) from None
    if problems:
        raise ConfigError(problems)
    config = config.model_copy(
        update={"rules": load_rules(config.rules, smap, base, config.rules_dir)}
    )
    return _resolve_paths(config, base)


def load_config(path: Path) -> GatewayConfig:
    """Load and validate a config file; raise ConfigError listing every problem."""
    data, smap = load_yaml_file(path)
    return validate_data(data, smap, path.parent.resolve())


def load_config_text(text: str, name: str = "<config>", base: Path | None = None) -> GatewayConfig:
    data, smap = load_yaml_text(text, name)
    return validate_data(data, smap, base or Path.cwd())
