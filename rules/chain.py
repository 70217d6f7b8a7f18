"""Checks that span the rules of a set: unique names, and ``from`` without cycles.

Events flow forward through the rules in order, so the only way to make a
cycle is a ``from`` naming the rule itself or a later rule: its events would
be fed back to rules they have already passed. Such a ``from`` is refused, as
is one naming no rule at all (with "did you mean …?"). What remains cannot
cycle: every edge of the flow goes from an earlier rule to a later one.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the schema's module imports every operator: not needed to run rules
    from tidegate.rules.config import RuleConfig


@dataclass(frozen=True, slots=True)
class RuleSetProblem:
    """One problem: in rule ``rule`` (its index in the set), at ``path`` inside it."""

    rule: int
    path: tuple[str | int, ...]
    message: str
    other: int | None = None
    """The other rule involved: the first one with a duplicate name, the one ``from`` names."""


class RuleSetError(ValueError):
    """A rule set that cannot run; the loader reports the problems with their positions."""

    def __init__(self, problems: Sequence[RuleSetProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(_describe(p) for p in self.problems))


def _describe(problem: RuleSetProblem) -> str:
    """The problem for code that has no file positions: rules by number (1-based)."""
    other = f" (rule {problem.other + 1})" if problem.other is not None else ""
    return f"rule {problem.rule + 1}: {problem.message}{other}"


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_rule_set(rules: Sequence[RuleConfig]) -> list[RuleSetProblem]:
    """Every problem of the set as a whole; empty when it can run."""
    problems: list[RuleSetProblem] = []
    position: dict[str, int] = {}
    for index, rule in enumerate(rules):
        first = position.setdefault(rule.name, index)
        if first != index:
            problems.append(
                RuleSetProblem(
                    index,
                    ("name",),
                    f"duplicate rule name '{rule.name}'",
                    first,
                )
            )
    for index, rule in enumerate(rules):
        for k, source in enumerate(rule.from_ or ()):
            at = position.get(source)
            path: tuple[str | int, ...] = ("from", k)
            if at is None:
                hint = _did_you_mean(source, list(position))
                problems.append(RuleSetProblem(index, path, f"no rule is named '{source}'{hint}"))
            elif at == index:
                problems.append(
                    RuleSetProblem(
                        index, path, f"rule '{source}' cannot take its own output (a cycle)"
                    )
                )
            elif at > index:
                problems.append(
                    RuleSetProblem(
                        index,
                        path,
                        other=at,
                        message=f"'{source}' is a later rule: events only flow forward, so "
                        "taking its output would make a cycle; move this rule after it",
                    )
                )
    return problems
