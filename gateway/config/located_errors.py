"""Problems a validator finds at keys below the value it validates, all at once.

A model validator that compares several keys (two devices with one slave id, a
``timeout`` too short for a read) sees the whole section, so pydantic reports its
``ValueError`` at the section: the ``- name:`` line of a driver. Raising a
``LocatedError`` instead names the key, relative to the section
(``("devices", 1, "slave")``); ``Problems`` gathers every problem one validator
finds, so the first does not hide the others. pydantic keeps the raised exception
in the error's ``ctx["error"]``, and ``tidegate.config.validation_errors``
appends the path to the error's location: the loader prints each at its key's
line and column.

This module is light on purpose: driver config modules import it for every
file, valid or not (the error translation is imported only on an error).
"""

from __future__ import annotations

from collections.abc import Sequence

PathElem = str | int


class LocatedError(ValueError):
    """One problem, at ``at`` (keys and list indexes) below the validated value; at
    the key itself rather than its value when ``key`` (a name that is wrong)."""

    def __init__(self, message: str, *at: PathElem, key: bool = False) -> None:
        super().__init__(message)
        self.at: tuple[PathElem, ...] = at
        self.key = key


class Problems(ValueError):
    """Several problems one validator found, each reported at its own key."""

    def __init__(self, problems: Sequence[LocatedError]) -> None:
        # The joined text is what a caller that does not translate sees.
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems: tuple[LocatedError, ...] = tuple(problems)


class ProblemList:
    """Collects a validator's problems; ``raise_if_any`` reports them together."""

    def __init__(self) -> None:
        self.found: list[LocatedError] = []

    def add(self, message: str, *at: PathElem, key: bool = False) -> None:
        self.found.append(LocatedError(message, *at, key=key))

    def raise_if_any(self) -> None:
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise Problems(self.found)


def expand(error: BaseException) -> list[LocatedError] | None:
    """The located problems an exception carries; None for any other exception."""
    if isinstance(error, Problems):
        return list(error.problems)
    if isinstance(error, LocatedError):
        return [error]
    return None
