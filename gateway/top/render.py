"""`tidegate top`'s screen as text: the tracker and the person's choices in,
exactly ``height`` lines of at most ``width`` characters out.

The curses shell (``tidegate.top.screen``) only writes these lines, so what
the screen says is decided here and unit-tested without a terminal. Three
lines on top (the gateway, the views, the rates), the view's sections, and
the keys at the bottom; when the sections are taller than the screen the
longest ones are cut, each saying how many rows it left off.
"""

from __future__ import annotations

from tidegate.top import views
from tidegate.top.model import Tracker
from tidegate.top.state import KEYS_HELP, VIEWS, UiState
from tidegate.top.text import clip, rate
from tidegate.top.views import Frame, Section
from tidegate.wording import duration

MIN_WIDTH = 40
MIN_HEIGHT = 10


def render(
    tracker: Tracker, ui: UiState, width: int, height: int, *, ascii_only: bool = False
) -> list[str]:
    """The screen: ``height`` lines, none longer than ``width``."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        small = f"tidegate top needs {MIN_WIDTH}x{MIN_HEIGHT} at least; q quits"
        return _pad([clip(small, width)], width, height)
    f = Frame(tracker, ui, width, ascii_only)
    top = [_header(f), _tabs(f), _rates(f)]
    body_height = height - len(top) - 1
    if tracker.doc is None:
        body = [tracker.error or "connecting to the gateway…"]
    elif ui.help:
        body = _help(width)
    else:
        body = fit(_sections(f), body_height)
    return [*_pad([*top, *body[:body_height]], width, height - 1), _footer(f)]


def _pad(lines: list[str], width: int, height: int) -> list[str]:
    lines = [clip(line, width) for line in lines[:height]]
    return lines + [""] * (height - len(lines))


def _header(f: Frame) -> str:
    doc = f.doc
    left = (
        f"tidegate {doc.get('gateway', '?')} · up {duration(doc.get('uptime_s'))} · "
        f"v{doc.get('version', '?')} · pid {doc.get('pid', '?')}"
        if doc
        else "tidegate top"
    )
    right = "PAUSED" if f.ui.paused else ""
    if f.tracker.error and doc:
        right = "GATEWAY UNREACHABLE"
    if right and len(left) + len(right) + 2 <= f.width:
        return left.ljust(f.width - len(right)) + right
    return clip(f"{left}  {right}".rstrip(), f.width)


def _tabs(f: Frame) -> str:
    names = {"outbox & uplinks": "outbox", "actions & commands": "actions"}
    short = f.width < 100
    parts = []
    for i, name in enumerate(VIEWS):
        label = f"{i + 1} {names.get(name, name) if short else name}"
        parts.append(f"[{label}]" if i == f.ui.view and not f.ui.help else f" {label} ")
    text = " ".join(parts)
    if f.ui.filter:
        text += f"  filter: {f.ui.filter}"
    return clip(text, f.width)


def _rates(f: Frame) -> str:
    if f.tracker.error and f.doc:
        return clip(f"! {f.tracker.error} (showing the last status; retrying)", f.width)
    r = f.doc.get("rates") or {}
    if not r:
        return ""
    return clip(
        f"in {rate(r.get('events_in', 0))}/s · accepted {rate(r.get('accepted', 0))}/s · "
        f"delivered {rate(r.get('delivered', 0))}/s · dropped {rate(_dropped(r))}/s · "
        f"errors {rate(r.get('driver_errors', 0))}/s (last {r.get('window_s', 0):.0f} s)",
        f.width,
    )


def _dropped(r: dict[str, float]) -> float:
    return float(r.get("rule_dropped", 0.0)) + float(r.get("outbox_dropped", 0.0))


def _footer(f: Frame) -> str:
    if f.ui.editing is not None:
        return clip(f"filter source (glob, Enter applies, Esc cancels): {f.ui.editing}_", f.width)
    keys = "q quit  p pause  1-4/Tab views  / filter  ? help"
    return clip(keys if not f.ui.paused else keys + "  (paused)", f.width)


def _help(width: int) -> list[str]:
    lines = ["keys"]
    lines += [clip(f"  {key:<9} {what}", width) for key, what in KEYS_HELP]
    lines += [
        "",
        clip("Rates come from successive status documents (two a second); values", width),
        clip("and their sparklines from the event stream after the rules, as", width),
        clip("`tidegate tail` shows it. ? or Esc goes back.", width),
    ]
    return lines


def _sections(f: Frame) -> list[Section]:
    if f.ui.view == 0:
        return [
            views.drivers(f, signals=False),
            views.values(f),
            views.outbox_summary(f),
            views.uplinks_summary(f),
            views.rules(f),
            views.actions_brief(f),
            views.commands(f, brief=True),
            views.notices(f),
        ]
    if f.ui.view == 1:
        return [views.drivers(f, signals=True), views.rules(f)]
    if f.ui.view == 2:
        return [views.outbox_detail(f), views.uplinks_detail(f)]
    return [views.actions(f), views.commands(f), views.notices(f)]


def fit(sections: list[Section], height: int) -> list[str]:
    """The sections' lines in at most ``height`` rows: while too tall, the longest
    section loses a row (never below its ``keep``), and says how many it lost."""
    shown = [len(s.lines) for s in sections]

    def total() -> int:
        return sum(n + (1 if n < len(s.lines) else 0) for n, s in zip(shown, sections, strict=True))

    while total() > height:
        cuttable = [i for i, s in enumerate(sections) if shown[i] > s.keep]
        if not cuttable:
            break
        longest = max(cuttable, key=lambda i: shown[i])
        shown[longest] -= 1
    out: list[str] = []
    for n, s in zip(shown, sections, strict=True):
        out += s.lines[:n]
        if n < len(s.lines):
            out.append(f"  … {len(s.lines) - n} more (a taller terminal shows them)")
    return out[:height]
