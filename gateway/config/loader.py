"""Loading the configuration: YAML → validated, typed ``GatewayConfig``.

Every problem found is reported as ``FILE:LINE:COL: path: message``, all of
them at once, with "did you mean …?" for misspelled keys and driver types.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union

from pydantic import BaseModel, Field, ValidationError, create_model

from tidegate.config.paths import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    config_relative,
    require_config_file,
    resolve_config_path,
)
from tidegate.config.schema import GatewayConfig, MqttSection
from tidegate.config.yaml_source import SourceMap, load_yaml_file, load_yaml_text
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
def config_model(
    kinds: tuple[str, ...] | None = None, rules: bool = True, two_way: bool = True
) -> type[GatewayConfig]:
    """GatewayConfig with ``drivers`` typed as the union of the driver kinds ``kinds``
    (every kind when None: the schema, the reference, and files with a type that is
    not known), ``rules`` with the rule schema when ``rules`` (a file without
    rules does not import the rule engine's schemas), and ``actions`` and ``commands``
    with theirs when ``two_way`` (the same for a file without them)."""
    found = driver_types()
    names = tuple(found) if kinds is None else kinds
    configs = tuple(found[name].config_type for name in names)
    # A discriminated union even of one kind: the same errors, at the same places.
    item: Any = Annotated[Union[configs], Field(discriminator="type")]  # noqa: UP007 - runtime-built union
    rule: Any = Any
    if rules:
        from tidegate.rules.config import RuleConfig  # noqa: PLC0415 - only files with rules

        rule = RuleConfig
    action: Any = Any
    commands: Any = Any
    if two_way:
        from tidegate.actions.config import ActionConfig  # noqa: PLC0415 - files that act
        from tidegate.commands.config import CommandsSection  # noqa: PLC0415

        action, commands = ActionConfig, CommandsSection
    model: type[GatewayConfig] = create_model(
        "TidegateConfig",
        __base__=GatewayConfig,
        actions=(
            list[action],
            Field(
                default_factory=list, description=GatewayConfig.model_fields["actions"].description
            ),
        ),
        commands=(
            commands | None,
            Field(None, description=GatewayConfig.model_fields["commands"].description),
        ),
        drivers=(list[item], Field(min_length=1, description="Event sources.")),
        rules=(
            list[rule],
            Field(default_factory=list, description="Rules, in order (see the rules section)."),
        ),
    )
    return model


def translate_validation_error(
    exc: ValidationError, root: type[BaseModel], data: Any, smap: SourceMap
) -> ConfigError:
    """``tidegate.config.validation_errors.translate_validation_error``, imported when
    there is an error to translate: a valid file does without it (and difflib)."""
    from tidegate.config import validation_errors  # noqa: PLC0415 - only on an error

    return validation_errors.translate_validation_error(exc, root, data, smap)


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


def _check_uplink_routes(config: GatewayConfig, data: dict[str, Any], smap: SourceMap) -> list[str]:
    """Every uplink a rule's ``publish: {uplink: ...}`` names is one the file has."""
    names = [u.name for u in config.all_uplinks()]
    in_file = len(data.get("rules") or [])
    problems = []
    for index, rule in enumerate(config.rules):
        publish = rule.publish
        unknown = [n for n in (publish.uplink or []) if n not in names] if publish else []
        if not unknown:
            continue
        where = (
            f"{smap.locate(('rules', index, 'publish', 'uplink'))}: rules[{index}]"
            if index < in_file
            else f"rule {rule.name!r} (rules_dir)"
        )
        have = f"the uplinks are {', '.join(names)}" if names else "the file has no uplinks"
        problems.append(f"{where}.publish.uplink: no uplink named {unknown[0]!r} ({have})")
    return problems


M = TypeVar("M", bound=MqttSection)


def _resolve_paths(config: GatewayConfig, base: Path) -> GatewayConfig:
    """Make relative paths relative to the config file, not the working directory."""

    def absolute(p: Path | None) -> Path | None:
        return None if p is None else config_relative(p, base)

    gateway = config.gateway.model_copy(update={"data_dir": absolute(config.gateway.data_dir)})
    buffer = config.buffer.model_copy(update={"path": absolute(config.buffer.path)})
    control = config.control.model_copy(update={"socket": absolute(config.control.socket)})
    remote = config.remote_rules
    if remote is not None:
        remote = remote.model_copy(update={"file": absolute(remote.file)})

    def uplink(mqtt: M) -> M:
        tls = mqtt.tls
        if tls is not None:
            tls = tls.model_copy(
                update={
                    "ca_file": absolute(tls.ca_file),
                    "cert_file": absolute(tls.cert_file),
                    "key_file": absolute(tls.key_file),
                }
            )
        azure = mqtt.azure
        if azure is not None:
            azure = azure.model_copy(update={"device_key_file": absolute(azure.device_key_file)})
        return mqtt.model_copy(
            update={"tls": tls, "password_file": absolute(mqtt.password_file), "azure": azure}
        )

    return config.model_copy(
        update={
            "gateway": gateway,
            "buffer": buffer,
            "control": control,
            "remote_rules": remote,
            "mqtt": None if config.mqtt is None else uplink(config.mqtt),
            "uplinks": [uplink(u) for u in config.uplinks],
            "commands": None
            if config.commands is None
            else config.commands.model_copy(
                update={"key_file": absolute(config.commands.key_file)}
            ),
        }
    )


def validate_data(data: Any, smap: SourceMap, base: Path) -> GatewayConfig:
    if data is None:
        raise ConfigError([f"{smap.file}:1:1: the file is empty; it needs at least `drivers:`"])
    if not isinstance(data, dict):
        raise ConfigError([f"{smap.locate(())}: the top level must be a mapping of sections"])
    has_rules = "rules" in data or "rules_dir" in data
    two_way = "actions" in data or "commands" in data
    model = config_model(used_driver_kinds(data), has_rules, two_way)
    problems = (
        _check_unique(data, smap, "drivers", "driver")
        + _check_unique(data, smap, "rules", "rule")
        + _check_unique(data, smap, "uplinks", "uplink")
        + _check_unique(data, smap, "actions", "action")
    )
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        from tidegate.config.validation_errors import line_col  # noqa: PLC0415 - on an error
        from tidegate.rules.expr.location import split_expression_errors  # noqa: PLC0415

        messages, rest = split_expression_errors(exc, smap)
        if rest is not None:
            messages += translate_validation_error(rest, model, data, smap).messages
        messages += problems
        raise ConfigError(sorted(messages, key=line_col)) from None
    if config.actions or config.commands is not None:
        from tidegate.actions.checks import check_actions  # noqa: PLC0415 - only with actions

        problems += check_actions(config, smap)
    if problems:
        raise ConfigError(problems)
    if has_rules:
        from tidegate.rules.loader import load_rules  # noqa: PLC0415 - only files with rules

        config = config.model_copy(
            update={"rules": load_rules(config.rules, smap, base, config.rules_dir)}
        )
        unrouted = _check_uplink_routes(config, data, smap)
        if any(rule.action is not None for rule in config.rules):
            from tidegate.actions.checks import check_rule_actions  # noqa: PLC0415

            unrouted += check_rule_actions(config, len(data.get("rules") or []), smap)
        if unrouted:
            raise ConfigError(unrouted)
    return _resolve_paths(config, base)


def load_config(path: Path) -> GatewayConfig:
    """Load and validate a config file; raise ConfigError listing every problem."""
    data, smap = load_yaml_file(require_config_file(path))
    return validate_data(data, smap, path.parent.resolve())


def load_config_text(text: str, name: str = "<config>", base: Path | None = None) -> GatewayConfig:
    data, smap = load_yaml_text(text, name)
    return validate_data(data, smap, base or Path.cwd())
