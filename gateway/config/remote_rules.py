"""The ``remote_rules:`` section: rules updates pushed from outside that cannot brick a gateway.

```yaml
rules_dir: rules
remote_rules:
  file: rules/50-remote.yaml   # the file an update replaces; inside rules_dir
  confirm_within: 60s          # healthy within this after applying, or rolled back
  healthy_for: 5s              # healthy this long in a row confirms before the deadline
  keep: 5                      # confirmed versions kept for `tidegate config rollback`
  whole_config: false          # true: the whole config file too, with a restart
```

Without the section a gateway refuses every update, with one line saying so.
How an update runs is in ``tidegate.remote.update``; a whole config, in
``tidegate.remote.whole_config``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pydantic import Field

from tidegate.config.types import Duration, Section


class RemoteRulesSection(Section):
    file: Path = Field(
        description="The rule file a remote update replaces (`tidegate config push`, the "
        "`rules_update` command), relative to this config file. It must lie directly inside "
        "`rules_dir` and end in `.yaml` (the loader reads it with the other rule files, in "
        "name order); it need not exist before the first update.",
    )
    confirm_within: Duration = Field(
        60.0,
        gt=0,
        le=86400,
        description="How long the gateway has, after applying an update, to be healthy (every "
        "uplink connected, every driver running); otherwise the previous file is restored.",
    )
    healthy_for: Duration = Field(
        5.0,
        gt=0,
        description="Healthy this long in a row confirms an update before `confirm_within` "
        "ends; healthy at the deadline confirms it too.",
    )
    keep: int = Field(
        5,
        ge=1,
        le=1000,
        description="Confirmed versions kept besides the current one (and as many refused or "
        "rolled-back ones), in `<outbox folder>/rules-history/`.",
    )
    whole_config: bool = Field(
        False,
        description="Also take a whole new config file (the `config_update` command, `tidegate "
        "config push --whole`): validated as `tidegate check` would, written, and the gateway "
        "restarted on it; not healthy within `confirm_within` of that start (or not starting at "
        "all): the previous file is put back and the gateway restarted again. The gateway must "
        "be able to write the config file's folder.",
    )


def _normal(path: Path) -> PurePosixPath:
    """``path`` as if the config file were at ``/config/x``: compared without the disk."""
    parts: list[str] = []
    for part in PurePosixPath("/config", path).parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath("/", *parts)


def remote_file_problem(section: RemoteRulesSection, rules_dir: Path | None) -> str | None:
    """Why ``section.file`` is not a file the rule loader reads, or None."""
    if rules_dir is None:
        return "needs `rules_dir`: the file must be one of the rule files the loader reads"
    file = section.file.expanduser()
    if file.suffix != ".yaml" or file.name.startswith("."):
        return f"{file} is not read as a rule file: its name must end in .yaml, not start with '.'"
    if _normal(file).parent != _normal(rules_dir.expanduser()):
        return (
            f"{file} is not directly inside rules_dir ({rules_dir}): the loader would not read it"
        )
    return None
