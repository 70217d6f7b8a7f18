"""Plain words for PyYAML's indentation errors.

PyYAML reports an indentation mistake in its parser's terms ("mapping values
are not allowed here", "expected <block end>, but found '?'", "found character
'\\t' that cannot start any token"). A person fixing a config needs to know
which column the line should start in. ``explain`` reads the lines above the
error and says it with their columns; the caller keeps PyYAML's position. What
it does not recognise it leaves alone (``None``): the raw problem is then
shown, as before.

Columns are 1-based, as in the ``FILE:LINE:COL`` the loader prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

# `- - key: value`: the dashes of nested list items, then an optional key
# (plain or quoted) followed by ':' and a space or the end of the line.
_DASH = re.compile(r"-(?=\s|$)\s*")
# No `\s*` before the ':' (stripped afterwards): a long run of spaces must not backtrack.
_KEY = re.compile(r"""("[^"]*"|'[^']*'|[^\s#'"{\[\]},&*!|>%@`-][^#]*?|-[^\s#][^#]*?):(?=\s|$)""")

_TAB = "found character '\\t' that cannot start any token"
_MAPPING_VALUES = "mapping values are not allowed here"
_BLOCK_END = "expected <block end>, but found "


@dataclass(frozen=True, slots=True)
class _Line:
    number: int  # 1-based
    indent: int  # column of the first character
    dashes: tuple[int, ...]  # columns of the list items' '-'
    key: str | None
    key_col: int  # column after the dashes (of the key, if any)
    opens: bool  # a key with nothing after its ':' (a nested mapping or list follows)
    text: str  # the line without its indentation


@dataclass(frozen=True, slots=True)
class _Anchor:
    """A column a line may line up with: a key, or a list item's '-'."""

    col: int
    line: int
    key: str | None  # None: the '-' of a list item

    def __str__(self) -> str:
        if self.key is None:
            return f"the '- ' on line {self.line}"
        return f"`{self.key}:` on line {self.line}"


def _parse(raw: str, number: int) -> _Line | None:
    """The shape of one line; None for blank lines and comments."""
    stripped = raw.lstrip(" ")
    if not stripped.strip() or stripped.startswith("#"):
        return None
    indent = len(raw) - len(stripped) + 1
    pos = indent - 1
    dashes: list[int] = []
    while match := _DASH.match(raw, pos):
        dashes.append(pos + 1)  # a '-' ending the line too: its item's content follows
        pos = match.end()
    key_match = _KEY.match(raw, pos)
    key = key_match.group(1).rstrip().strip("'\"") if key_match else None
    rest = raw[key_match.end() :].strip() if key_match else "-"
    opens = not rest or rest.startswith("#")
    return _Line(
        number=number,
        indent=indent,
        dashes=tuple(dashes),
        key=key,
        key_col=pos + 1,
        opens=opens,
        text=stripped.rstrip(),
    )


def _anchors(lines: list[_Line | None], before: int) -> list[_Anchor]:
    """The columns still open above line ``before`` (1-based), nearest first.

    Walking up, a line counts only if it starts left of every line counted so
    far: those are the mappings and lists the line at ``before`` can belong to.
    """
    found: list[_Anchor] = []
    threshold = 1 << 30
    for line in reversed(lines[: before - 1]):
        if line is None or line.indent >= threshold:
            continue
        cols = [_Anchor(d, line.number, None) for d in line.dashes]
        if line.key is not None:
            cols.append(_Anchor(line.key_col, line.number, line.key))
        if not cols:
            continue  # a value's continuation, not a structure
        found += [a for a in reversed(cols) if a.col < threshold]
        threshold = line.indent
        if threshold == 1:
            break
    return found


def _what(line: _Line) -> str:
    if line.dashes:
        return "this list item"
    if line.key is not None:
        return f"`{line.key}:`"
    return f"`{line.text[:20]}`" + ("…" if len(line.text) > 20 else "")


def _other_choice(shallower: _Anchor | None) -> str:
    if shallower is None:
        return ""
    if shallower.key is None:
        return f", or write '- ' in column {shallower.col} to start a new list item"
    return f", or to column {shallower.col} to line up with {shallower}"


def _block_end(lines: list[_Line | None], number: int, col: int, found: str) -> str | None:
    """PyYAML's "expected <block end>, but found X": the line starts in no open column."""
    line = lines[number - 1] if number <= len(lines) else None
    if line is None:
        return None
    anchors = _anchors(lines, number)
    exact = next((a for a in anchors if a.col == col), None)
    deeper = min((a for a in anchors if a.col > col), key=lambda a: a.col, default=None)
    shallower = max((a for a in anchors if a.col < col), key=lambda a: a.col, default=None)
    what = _what(line)
    if found in ("'?'", "'<block mapping start>'") and not line.dashes:
        if exact is not None and exact.key is None:
            item = next((a for a in anchors if a.line == exact.line and a.key is not None), None)
            into = (
                f"indent it to column {item.col} to add it to that item "
                f"(line up with `{item.key}:`), or "
                if item is not None
                else ""
            )
            return (
                f"{what} starts in column {col}, under {exact}, but is not a list item: "
                f"{into}start it with '- ' to make a new item"
            )
        if deeper is not None:
            return (
                f"{what} starts in column {col}, but the keys above it start in column "
                f"{deeper.col} ({deeper}): the keys of one mapping start in the same column; "
                f"move it to column {deeper.col} to line up with them{_other_choice(shallower)}"
            )
        if shallower is not None:
            return (
                f"{what} is indented deeper (column {col}) than {shallower} (column "
                f"{shallower.col}), which already has its value: the keys of one mapping "
                f"start in the same column; move it to column {shallower.col}"
            )
        return None
    if line.dashes:
        dashes = [a for a in anchors if a.key is None]
        near = min(dashes, key=lambda a: abs(a.col - col), default=None)
        if near is None:
            return (
                f"this list item starts in column {col}, but no list above it is open there: "
                "a list goes under a key with nothing after its ':' (like `devices:`), "
                "indented deeper than that key, each '- ' in the same column"
            )
        return (
            f"this list item starts in column {col}, which lines up with nothing above it: "
            f"the items of one list start in the same column; move its '- ' to column "
            f"{near.col} to line up with {near}"
        )
    outer = next((a for a in anchors if a.key is None and a.col < col), None)
    if outer is None:
        return None
    return (
        f"this line (column {col}) is neither a key nor a list item: to add it to the list of "
        f"line {outer.line}, start it with '- ' in column {outer.col}"
    )


def _mapping_values(lines: list[_Line | None], number: int, col: int) -> str | None:
    """PyYAML's "mapping values are not allowed here": a ': ' where no key can start."""
    line = lines[number - 1] if number <= len(lines) else None
    if line is None:
        return None
    offset = col - line.key_col  # where the ':' is, within the text after the dashes
    head = line.text[line.key_col - line.indent : line.key_col - line.indent + offset]
    if line.key is not None and len(line.key) < len(head.rstrip()):
        # `name: a: b`: the value itself holds a ': '.
        return (
            f"the value of `{line.key}:` contains ': ', which YAML reads as another key: "
            "put the value in quotes"
        )
    owner = next(
        (a for a in _anchors(lines, number) if a.key is not None and a.col < line.key_col), None
    )
    if owner is None or owner.line != _previous(lines, number):
        return (
            "a ': ' where no key can start: line up the keys of one mapping in the same "
            "column, or put a value that contains ': ' in quotes"
        )
    return (
        f"{_what(line)} is indented deeper (column {line.key_col}) than {owner} "
        f"(column {owner.col}), so YAML reads it as part of the value of `{owner.key}:`: "
        f"the keys of one mapping start in the same column; move it to column {owner.col}"
    )


def _previous(lines: list[_Line | None], number: int) -> int:
    return next((ln.number for ln in reversed(lines[: number - 1]) if ln is not None), 0)


def _tab(lines: list[_Line | None], raw_lines: list[str], number: int, col: int) -> str:
    raw = raw_lines[number - 1] if number <= len(raw_lines) else ""
    if not raw[col:].strip():
        return "a tab at the end of the line: YAML does not allow it here; remove it"
    if raw[: col - 1].strip(" \t"):
        return "a tab where YAML expects a space: replace the tab with a space"
    above = next((ln for ln in reversed(lines[: number - 1]) if ln is not None), None)
    hint = ""
    if above is not None and above.key is not None:
        if above.opens:
            hint = (
                f" (to nest it under `{above.key}:` on line {above.number}, indent it deeper "
                f"than column {above.key_col}, e.g. to column {above.key_col + 2})"
            )
        else:
            hint = f" (column {above.key_col} lines up with `{above.key}:` on line {above.number})"
    return f"this line is indented with a tab: YAML indents with spaces only; use spaces{hint}"


def explain(exc: yaml.MarkedYAMLError, text: str) -> str | None:
    """A plain, actionable line for an indentation error, or None if it is another error."""
    mark = exc.problem_mark
    problem = exc.problem or ""
    if mark is None:
        return None
    number, col = mark.line + 1, mark.column + 1
    raw_lines = text.splitlines()[:number]  # only the lines above matter
    lines = [_parse(raw, i + 1) for i, raw in enumerate(raw_lines)]
    if problem == _TAB:
        return _tab(lines, raw_lines, number, col)
    if problem == _MAPPING_VALUES:
        return _mapping_values(lines, number, col)
    if problem.startswith(_BLOCK_END):
        return _block_end(lines, number, col, problem[len(_BLOCK_END) :])
    return None
