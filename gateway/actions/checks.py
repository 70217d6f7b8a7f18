"""Checks of ``actions:``, ``commands:`` and rules' ``action:`` against the rest of the
file, with positions: a named driver, device, register, action or uplink that is not
there, an argument an action does not take."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tidegate.actions.config import (
    ACTION_DRIVER_TYPES,
    ActionConfig,
    GpioAction,
    ModbusAction,
)
from tidegate.event import ACTIONS_SOURCE

if TYPE_CHECKING:
    from tidegate.config.schema import GatewayConfig
    from tidegate.config.yaml_source import SourceMap
    from tidegate.rules.config import RuleConfig


def _action_problem(action: Any, driver: Any) -> str | None:
    if driver is None:
        return f"no driver named {action.driver!r}"
    wanted = ACTION_DRIVER_TYPES[action.type]
    if driver.type != wanted:
        return (
            f"driver {action.driver!r} is a {driver.type} driver; "
            f"a {action.type} action needs a {wanted} one"
        )
    if isinstance(action, GpioAction) and getattr(driver, "mode", None) != "output":
        return f"gpio driver {action.driver!r} is not an output (`mode: output`)"
    if isinstance(action, ModbusAction):
        device = driver.device(action.device)
        if device is None:
            return f"modbus driver {action.driver!r} has no device {action.device!r}"
        register = device.register(action.register_)
        if register is None:
            return f"device {action.device!r} has no register {action.register_!r}"
        if not register.writable:
            return f"{action.device}.{action.register_} is read-only ({register.table})"
    return None


def check_actions(config: GatewayConfig, smap: SourceMap) -> list[str]:
    """What ``actions:`` and ``commands:`` name that the file does not have."""
    drivers = {d.name: d for d in config.drivers}
    problems = []
    for index, action in enumerate(config.actions):
        problem = _action_problem(action, drivers.get(action.driver))
        if problem is not None:
            where = smap.locate(("actions", index, "driver"))
            problems.append(f"{where}: actions[{index}].driver: {problem}")
    if config.actions and ACTIONS_SOURCE in drivers:
        index = list(drivers).index(ACTIONS_SOURCE)
        problems.append(
            f"{smap.locate(('drivers', index, 'name'))}: drivers[{index}].name: "
            f"{ACTIONS_SOURCE!r} is the source of the events recording actions; rename the driver"
        )
    commands = config.commands
    if commands is not None:
        actions = {a.name for a in config.actions}
        for index, spec in enumerate(commands.allow):
            if spec.action is not None and spec.action not in actions:
                where = smap.locate(("commands", "allow", index, "action"))
                have = ", ".join(sorted(actions)) or "none declared under `actions:`"
                problems.append(
                    f"{where}: commands.allow[{index}].action: no action {spec.action!r} ({have})"
                )
        for index, spec in enumerate(commands.allow):
            if spec.name == "rules_update" and config.remote_rules is None:
                where = smap.locate(("commands", "allow", index, "name"))
                problems.append(
                    f"{where}: commands.allow[{index}]: rules_update needs a `remote_rules:` "
                    "section (the file it replaces, how long to wait for health)"
                )
            remote = config.remote_rules
            if spec.name == "config_update" and (remote is None or not remote.whole_config):
                where = smap.locate(("commands", "allow", index, "name"))
                problems.append(
                    f"{where}: commands.allow[{index}]: config_update needs "
                    "`remote_rules: {whole_config: true}` (how long to wait for health after "
                    "the restart, where the versions are kept)"
                )
        uplinks = [u.name for u in config.all_uplinks()]
        for name in commands.uplinks or []:
            if name not in uplinks:
                where = smap.locate(("commands", "uplinks"))
                problems.append(f"{where}: commands.uplinks: no uplink named {name!r}")
        if not uplinks:
            where = smap.locate(("commands",))
            problems.append(f"{where}: commands: they arrive through an uplink; the file has none")
    return problems


def check_rule_actions(config: GatewayConfig, in_file: int, smap: SourceMap) -> list[str]:
    """Every rule ``action:`` runs a declared action with arguments it takes (at load)."""

    def where(index: int, rule: RuleConfig) -> str:
        if index < in_file:
            return f"{smap.locate(('rules', index, 'action'))}: rules[{index}]"
        return f"rule {rule.name!r} (rules_dir)"

    return rule_action_problems(config.rules, config.actions, where)


def rule_action_problems(
    rules: Sequence[RuleConfig],
    actions: Sequence[ActionConfig],
    where: Callable[[int, RuleConfig], str] = lambda _, rule: f"rule {rule.name!r}",
) -> list[str]:
    """What rules' ``action:`` name that ``actions`` lack (a reload checks it too: a rule
    set is swapped in only with actions the running gateway has)."""
    declared = {a.name: a for a in actions}
    problems = []
    for index, rule in enumerate(rules):
        call = rule.action
        if call is None:
            continue
        at = where(index, rule)
        action = declared.get(call.run)
        if action is None:
            have = ", ".join(sorted(declared)) or "none declared under `actions:`"
            problems.append(f"{at}.action.run: no action {call.run!r} ({have})")
            continue
        specs = action.arg_specs()
        unknown = sorted(set(call.args) - set(specs))
        missing = sorted(n for n, s in specs.items() if s.default is None and n not in call.args)
        if unknown:
            takes = ", ".join(sorted(specs)) or "none"
            problems.append(
                f"{at}.action.args: {call.run} takes no {unknown[0]!r} (it takes: {takes})"
            )
        elif missing:
            problems.append(f"{at}.action.args: {call.run} needs {missing[0]!r}")
    return problems
