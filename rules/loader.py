"""Loading a rule set: the config's ``rules:`` list plus the files of its rules folder.

```yaml
# tidegate.yaml
rules_dir: rules          # relative to this file; every rules/*.yaml, sorted by name
rules:                    # these run first
  - name: no-debug
    match: {name: "debug*"}
    drop: true
```
```yaml
# rules/10-greenhouse.yaml: a rule file is a YAML list of rules, as under `rules:`
- name: greenhouse-f
  match: {source: greenhouse, name: temperature}
  set: {value: "value * 1.8 + 32", unit: "'°F'"}
```

The order of the set is the config's ``rules:`` then each file in name order
(``10-…`` before ``20-…``), each file top to bottom. Files whose names start
with ``.`` (editor backups) are skipped. Names are unique across the whole
set, and ``from`` is checked across it (``tidegate.rules.chain``). Every
problem is reported as ``FILE:LINE:COL: path: message``, all at once;
expression errors point at the character inside the expression.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tidegate.config.types import Section
from tidegate.config.yaml_source import PathKey, SourceMap, load_yaml_file, load_yaml_text
from tidegate.errors import ConfigError
from tidegate.rules.chain import check_rule_set
from tidegate.rules.config import RuleConfig
from tidegate.rules.expr.location import split_expression_errors

RULES_DIR_KEY = "rules_dir"
"""The top-level config key naming the rules folder."""


class RuleFile(Section):
    """A rule file, seen as if its list were the value of ``rules:``."""

    rules: list[RuleConfig] = Field(default_factory=list, description="The rules, in order.")


class RulesPart(BaseModel):
    """The keys of a full config file that make its rule set; the other sections are ignored."""

    # Built when a reload or `tidegate rules test` first uses it, not by every import.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    rules: list[RuleConfig] = Field(default_factory=list, description="Rules, in order.")
    rules_dir: Path | None = Field(
        None,
        description="Folder of rule files (*.yaml, each a list of rules), run after `rules:` "
        "in file name order. Relative to the config file.",
    )


@dataclass(frozen=True, slots=True)
class LocatedRule:
    """A validated rule and where it was written (for messages about the set)."""

    config: RuleConfig
    smap: SourceMap
    path: PathKey


def _line_col(message: str) -> tuple[int, int]:
    match = re.search(r":(\d+):(\d+): ", message)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _translate(
    exc: ValidationError, root: type[BaseModel], data: Any, smap: SourceMap
) -> ConfigError:
    # The config loader imports this module: importing it back at the top would be circular.
    from tidegate.config.loader import translate_validation_error  # noqa: PLC0415

    messages, rest = split_expression_errors(exc, smap)
    if rest is not None:
        messages += translate_validation_error(rest, root, data, smap).messages
    return ConfigError(sorted(messages, key=_line_col))


def _under_rules(smap: SourceMap) -> SourceMap:
    """The source map of a rule file with every path moved under ``rules``."""
    values = {("rules", *path): pos for path, pos in smap.values.items()}
    if () in smap.values:
        values[()] = smap.values[()]
    keys = {("rules", *path): pos for path, pos in smap.keys.items()}
    return SourceMap(smap.file, values, keys)


def load_rule_file(path: Path) -> list[LocatedRule]:
    """One rule file: a YAML list of rules (an empty file has none)."""
    return _rule_list(*load_yaml_file(path))


def load_rule_text(text: str, file: str) -> list[LocatedRule]:
    """A rule file's text, not yet on disk; messages name it ``file``."""
    return _rule_list(*load_yaml_text(text, file))


def _rule_list(data: Any, smap: SourceMap) -> list[LocatedRule]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(
            [f"{smap.locate(())}: a rule file is a YAML list of rules (`- name: ...`)"]
        )
    shifted = _under_rules(smap)
    wrapped = {"rules": data}
    try:
        parsed = RuleFile.model_validate(wrapped)
    except ValidationError as exc:
        raise _translate(exc, RuleFile, wrapped, shifted) from None
    return [LocatedRule(rule, shifted, ("rules", i)) for i, rule in enumerate(parsed.rules)]


def rule_files(folder: Path) -> list[Path]:
    """The rule files of a folder, in the order they run."""
    return sorted(
        (p for p in folder.glob("*.yaml") if not p.name.startswith(".") and p.is_file()),
        key=lambda p: p.name,
    )


def load_rules_dir(folder: Path) -> list[LocatedRule]:
    """Every rule file of ``folder``, in name order; all files' problems at once."""
    located: list[LocatedRule] = []
    problems: list[str] = []
    for path in rule_files(folder):
        try:
            located += load_rule_file(path)
        except ConfigError as exc:
            problems += exc.messages
    if problems:
        raise ConfigError(problems)
    return located


def _label(path: Sequence[str | int]) -> str:
    out = ""
    for elem in path:
        out += f"[{elem}]" if isinstance(elem, int) else (f".{elem}" if out else str(elem))
    return out


def check_located(located: Sequence[LocatedRule]) -> list[RuleConfig]:
    """Check the set as a whole (names, ``from``); return the configs in order."""
    configs = [rule.config for rule in located]
    messages = []
    for problem in check_rule_set(configs):
        rule = located[problem.rule]
        path = (*rule.path, *problem.path)
        message = problem.message
        if problem.other is not None:
            other = located[problem.other]
            where = other.smap.locate((*other.path, "name"))
            message += f" (rule '{other.config.name}' is at {where})"
        messages.append(f"{rule.smap.locate(path)}: {_label(path)}: {message}")
    if messages:
        raise ConfigError(messages)
    return configs


def _rules_folder(base: Path, rules_dir: Path, smap: SourceMap) -> Path:
    folder = rules_dir.expanduser()
    folder = folder if folder.is_absolute() else (base / folder)
    if not folder.is_dir():
        where = smap.locate((RULES_DIR_KEY,))
        raise ConfigError([f"{where}: {RULES_DIR_KEY}: {folder} is not a folder"])
    return folder


def load_rules(
    inline: Sequence[RuleConfig], smap: SourceMap, base: Path, rules_dir: Path | None
) -> list[RuleConfig]:
    """The whole rule set of a config: ``inline`` (its validated ``rules:``) then the folder.

    ``smap`` is the config file's source map, ``base`` the folder it is in.
    Raise ConfigError listing every problem, with positions in the file each
    rule came from.
    """
    located = [LocatedRule(rule, smap, ("rules", i)) for i, rule in enumerate(inline)]
    if rules_dir is not None:
        located += load_rules_dir(_rules_folder(base, rules_dir, smap))
    return check_located(located)


def load_rules_of_config(path: Path) -> list[RuleConfig]:
    """The rule set a config file names: its ``rules:`` and ``rules_dir``; nothing else is read."""
    data, smap = load_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError([f"{smap.locate(())}: the top level must be a mapping of sections"])
    try:
        part = RulesPart.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, RulesPart, data, smap) from None
    return load_rules(part.rules, smap, path.parent.resolve(), part.rules_dir)


def load_rules_replacing(config_path: Path, file: Path, text: str, label: str) -> list[RuleConfig]:
    """The config's rule set as it would be with ``file`` (a rule file directly in its
    ``rules_dir``, there or not yet) holding ``text``; its messages name it ``label``.

    What a remote rules update checks before it writes anything
    (``tidegate.remote.update``): the same checks as a reload, all at once.
    """
    data, smap = load_yaml_file(config_path)
    if not isinstance(data, dict):
        raise ConfigError([f"{smap.locate(())}: the top level must be a mapping of sections"])
    try:
        part = RulesPart.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, RulesPart, data, smap) from None
    located = [LocatedRule(rule, smap, ("rules", i)) for i, rule in enumerate(part.rules)]
    if part.rules_dir is None:
        raise ConfigError([f"{smap.locate(())}: the config has no `{RULES_DIR_KEY}`"])
    folder = _rules_folder(config_path.parent.resolve(), part.rules_dir, smap)
    target = file.resolve()
    files = sorted({*(p.resolve() for p in rule_files(folder)), target}, key=lambda p: p.name)
    problems: list[str] = []
    for path in files:
        try:
            located += load_rule_text(text, label) if path == target else load_rule_file(path)
        except ConfigError as exc:
            problems += exc.messages
    if problems:
        raise ConfigError(problems)
    return check_located(located)


def load_rules_for_reload(config_path: Path) -> list[RuleConfig]:
    """What SIGHUP / ``tidegate reload`` swaps in: the config's rule set, validated.

    Raises ConfigError (``FILE:LINE:COL: …`` lines) when anything in it is
    wrong; the running rules are then left as they are. Only ``rules`` and
    ``rules_dir`` are read: the other sections take effect on restart.
    """
    return load_rules_of_config(config_path)


def load_rule_path(path: Path) -> list[RuleConfig]:
    """``tidegate rules test RULES``: a rule file, a folder of them, or a config file."""
    if path.is_dir():
        return check_located(load_rules_dir(path))
    data, _ = load_yaml_file(path)
    if isinstance(data, dict):
        return load_rules_of_config(path)
    return check_located(load_rule_file(path))
