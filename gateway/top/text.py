"""Small text pieces of `tidegate top`: durations, sizes, sparklines, tables
that fit a width. Every line they make is at most the width they are given."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

BLOCKS = "▁▂▃▄▅▆▇█"
ASCII_BLOCKS = "_.-:=+*#"
"""For a terminal that cannot show the block characters (not UTF-8)."""


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, with an ellipsis when cut."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…" if width > 1 else text[:width]


def rate(per_second: float | None) -> str:
    if per_second is None:
        return "-"
    if per_second == 0:
        return "0"
    return f"{per_second:.0f}" if per_second >= 100 else f"{per_second:.1f}"


def value_text(value: object) -> str:
    """An event's value, short: numbers rounded for a glance, bools lower-case."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    return "-" if value is None else str(value)


def spark(
    values: Iterable[float], width: int, *, from_zero: bool = False, ascii_only: bool = False
) -> str:
    """The last ``width`` values as a sparkline. ``from_zero``: the scale starts at 0
    (rates, depths: an idle stretch shows low); else it spans the values' own range
    (a temperature's wiggle shows)."""
    blocks = ASCII_BLOCKS if ascii_only else BLOCKS
    recent = list(values)[-width:] if width > 0 else []
    if not recent:
        return ""
    low = 0.0 if from_zero else min(recent)
    high = max(recent)
    if high <= low:
        # Flat: all at the bottom when that is zero, else mid-height (a steady value).
        return blocks[0 if high <= 0 else len(blocks) // 2] * len(recent)
    span = high - low
    top = len(blocks) - 1
    return "".join(blocks[round((v - low) / span * top)] for v in recent)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[str]:
    """Columns as wide as their widest cell, two spaces apart, each line clipped;
    the last column takes what is left (it holds a sparkline or an error)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        line = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True))
        out.append(clip(f"  {line}  {row[-1]}".rstrip(), width))
    return out
