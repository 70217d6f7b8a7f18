"""The sections of `tidegate top`'s views, each built from the tracker alone.

A section is its lines and how many of them must stay when the screen is
short (its title, its column heads, a row); ``tidegate.top.render`` cuts the
rest to fit the height and says how many rows it left off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidegate.top.model import Document, Tracker
from tidegate.top.state import UiState
from tidegate.top.text import clip, rate, spark, table, value_text
from tidegate.wording import duration, size

SPARK_MIN = 8
"""Narrowest sparkline worth drawing; below it the column is left out."""


@dataclass(slots=True)
class Section:
    lines: list[str]
    keep: int = 1


@dataclass(frozen=True, slots=True)
class Frame:
    """What every section needs: the data, the choices and the width."""

    tracker: Tracker
    ui: UiState
    width: int
    ascii_only: bool = False

    @property
    def doc(self) -> Document:
        return self.tracker.doc or {}

    def spark(self, values: Any, width: int, *, from_zero: bool = False) -> str:
        if width < SPARK_MIN:
            return ""
        return spark(values, width, from_zero=from_zero, ascii_only=self.ascii_only)


def drivers(f: Frame, *, signals: bool) -> Section:
    """State, events/s, errors, last event and a rate sparkline per driver; with
    ``signals``, each signal's last value and a sparkline of its values under it."""
    shown = [d for d in f.doc.get("drivers", []) if f.ui.shows(str(d.get("name")))]
    hidden = len(f.doc.get("drivers", [])) - len(shown)
    title = "drivers" + (f" (filter {f.ui.filter}: {hidden} hidden)" if f.ui.filter else "")
    rows = [
        [
            str(d["name"])[:18],
            str(d.get("state", "?"))[:12],
            rate(f.tracker.driver_rates.get(str(d["name"]))),
            str(d.get("errors", 0)),
            duration(d.get("last_event_age_s")),
        ]
        for d in shown
    ]
    header = ["NAME", "STATE", "EV/S", "ERRORS", "LAST EVENT"]
    used = max(len(line) for line in table([*header, ""], [[*r, ""] for r in rows], 10_000))
    room = f.width - used - 2
    lines = [title]
    body = table(
        [*header, "RATE" if room >= SPARK_MIN else ""],
        [[*r, f.spark(f.tracker.driver_trend.get(r[0], ()), room, from_zero=True)] for r in rows],
        f.width,
    )
    lines.append(body[0])
    for d, line in zip(shown, body[1:], strict=True):
        lines.append(line)
        if d.get("last_error") and d.get("state") != "running":
            lines.append(clip(f"      ! {d['last_error']}", f.width))
        if signals:
            lines.extend(_signal_lines(f, str(d["name"])))
    if not shown:
        lines.append("  (none)" if not hidden else "  (none matches the filter)")
    return Section(lines, keep=3)


def _signal_lines(f: Frame, source: str) -> list[str]:
    tracks = sorted(
        (t for t in f.tracker.signals.values() if t.source == source), key=lambda t: t.name
    )
    out = []
    for t in tracks:
        text = f"      {t.name} = {value_text(t.value)}" + (f" {t.unit}" if t.unit else "")
        text = clip(text, max(f.width // 2, f.width - 30))
        room = f.width - len(text) - 2
        out.append(clip(f"{text.ljust(f.width - room - 1)} {f.spark(t.values, room)}", f.width))
    return out


def values(f: Frame) -> Section:
    """The last value of each signal, from the event stream (overview: one line)."""
    tracks = [t for t in f.tracker.signals.values() if f.ui.shows(t.source)]
    if not tracks:
        note = f.tracker.stream_note or "waiting for events"
        return Section([clip(f"values: {note}", f.width)])
    parts = [
        f"{t.source}/{t.name} {value_text(t.value)}" + (f" {t.unit}" if t.unit else "")
        for t in sorted(tracks, key=lambda t: (t.source, t.name))
    ]
    return Section([clip("values: " + " · ".join(parts), f.width)])


def rules(f: Frame) -> Section:
    rules_ = f.doc.get("rules", [])
    rows = [
        [
            str(r["name"])[:24],
            str(r.get("in", 0)),
            str(r.get("out", 0)),
            str(r.get("dropped", 0)),
            str(r.get("filtered", 0)),
            str(r.get("errors", 0)),
        ]
        for r in rules_
    ]
    return Section(
        ["rules", *table(["NAME", "IN", "OUT", "DROPPED", "FILTERED", "ERRORS"], rows, f.width)],
        keep=3,
    )


def outbox_summary(f: Frame) -> Section:
    o = f.doc.get("outbox") or {}
    drops = o.get("dropped") or {}
    dropped = ", ".join(f"{k} {v}" for k, v in drops.items()) or "none"
    head = (
        f"outbox {o.get('depth', 0)} events · {size(o.get('bytes', 0))} · "
        f"oldest {duration(o.get('oldest_age_s')) if o.get('depth') else '-'} · dropped {dropped}"
    )
    if o.get("state", "open") != "open":
        head = f"outbox {o.get('state')}: {o.get('not_open') or ''} · " + head[7:]
    room = f.width - len(head) - 2
    if room >= SPARK_MIN:
        return Section([f"{head}  {f.spark(f.tracker.depth_trend, room, from_zero=True)}"])
    return Section([clip(head, f.width)])


def uplinks_summary(f: Frame) -> Section:
    ups = f.doc.get("uplinks", [])
    if not ups:
        return Section(["uplinks: none configured (events stay in the outbox)"])
    lines = []
    for u in ups:
        state = f"up {duration(u.get('since_s'))}" if u.get("connected") else "DOWN"
        line = f"uplink {u['name']} {state} · in flight {u.get('inflight', 0)}"
        if u.get("waiting") is not None:
            line += f" · waiting {u['waiting']}"
        if u.get("last_error") and not u.get("connected"):
            line += f" · {u['last_error']}"
        lines.append(clip(line, f.width))
    return Section(lines)


def outbox_detail(f: Frame) -> Section:
    o = f.doc.get("outbox") or {}
    lines = [clip(f"outbox {o.get('path', '')}", f.width)]
    state = str(o.get("state", "?"))
    if o.get("not_open"):
        state += f": {o['not_open']} ({o.get('held_in_memory', 0)} held in memory)"
    lines.append(clip(f"  state {state}", f.width))
    max_bytes = o.get("max_bytes")
    bound = f" of {size(max_bytes)}" if max_bytes else ""
    lines.append(
        clip(
            f"  depth {o.get('depth', 0)} · {size(o.get('bytes', 0))}{bound} · oldest "
            f"{duration(o.get('oldest_age_s')) if o.get('depth') else '-'}",
            f.width,
        )
    )
    prio = o.get("depth_by_priority") or {}
    lines.append(
        clip(
            f"  accepted {o.get('accepted', 0)} · acked {o.get('acked', 0)} · "
            + " · ".join(f"{k} {v}" for k, v in prio.items()),
            f.width,
        )
    )
    drops = o.get("dropped") or {}
    dropped = ", ".join(f"{k} {v}" for k, v in drops.items()) or "none"
    lines.append(
        clip(
            f"  dropped {dropped} · dead letters {o.get('dead_letters', 0)} · "
            f"lost in recovery {o.get('lost_in_recovery', 0)}",
            f.width,
        )
    )
    trend = f.spark(f.tracker.depth_trend, f.width - 10, from_zero=True)
    if trend:
        lines.append(f"  depth   {trend}")
    return Section(lines, keep=len(lines))


def uplinks_detail(f: Frame) -> Section:
    ups = f.doc.get("uplinks", [])
    if not ups:
        return Section(["uplinks: none configured (events stay in the outbox)"])
    lines = ["uplinks"]
    for u in ups:
        state = f"connected {duration(u.get('since_s'))}" if u.get("connected") else "DISCONNECTED"
        lines.append(clip(f"  {u['name']}  {u.get('address', '')}  {state}", f.width))
        lines.append(
            clip(
                f"    in flight {u.get('inflight', 0)} · delivered {u.get('delivered', 0)} · "
                f"rejected {u.get('rejected', 0)} · expired {u.get('expired', 0)} · "
                f"connects {u.get('connects', 0)}",
                f.width,
            )
        )
        lines.append(clip(f"    last error {u.get('last_error') or '-'}", f.width))
        ring = f.tracker.waiting_trend.get(str(u["name"]), ())
        trend = f.spark(ring, f.width - 22, from_zero=True)
        if u.get("waiting") is not None:
            lines.append(clip(f"    waiting {u['waiting']:<9} {trend}", f.width))
    return Section(lines, keep=2)


def actions(f: Frame) -> Section:
    acts: dict[str, Any] = f.doc.get("actions") or {}
    if not acts:
        return Section(["actions: none configured"])
    rows = [
        [
            name[:18],
            str(a.get("done", 0)),
            str(a.get("failed", 0)),
            str(sum((a.get("refused") or {}).values())),
            str(a.get("dropped_queue_full", 0)),
            str(a.get("last") or "-"),
        ]
        for name, a in acts.items()
    ]
    header = ["NAME", "DONE", "FAILED", "REFUSED", "QUEUE FULL", "LAST"]
    lines = ["actions", *table(header, rows, f.width)]
    for name, a in acts.items():
        if a.get("refused"):
            why = ", ".join(f"{k} {v}" for k, v in a["refused"].items())
            lines.append(clip(f"  {name} refused: {why}", f.width))
    return Section(lines, keep=3)


def commands(f: Frame, *, brief: bool = False) -> Section:
    c = f.doc.get("commands")
    if not c:
        return Section(["commands: not enabled"])
    refused = ", ".join(f"{k} {v}" for k, v in (c.get("refused") or {}).items()) or "none"
    counts = (
        f"received {c.get('received', 0)} · done {c.get('done', 0)} · "
        f"failed {c.get('failed', 0)} · repeated {c.get('repeated', 0)} · "
        f"dropped {c.get('dropped', 0)} · unanswered {c.get('unanswered', 0)}"
    )
    if brief:
        short = f"commands received {c.get('received', 0)} · done {c.get('done', 0)}" + "".join(
            f" · {k} {c[k]}" for k in ("failed", "dropped", "unanswered") if c.get(k)
        )
        return Section([clip(f"{short} · refused {refused}", f.width)])
    allowed = ", ".join(str(a) for a in c.get("allowed", [])) or "none"
    return Section(
        [
            "commands",
            clip(f"  {counts}", f.width),
            clip(f"  refused {refused}", f.width),
            clip(f"  allowed {allowed}", f.width),
        ],
        keep=2,
    )


def actions_brief(f: Frame) -> Section:
    acts: dict[str, Any] = f.doc.get("actions") or {}
    done = sum(int(a.get("done", 0)) for a in acts.values())
    failed = sum(int(a.get("failed", 0)) for a in acts.values())
    refused = sum(sum((a.get("refused") or {}).values()) for a in acts.values())
    line = (
        f"actions {len(acts)}: done {done} · failed {failed} · refused {refused}"
        if acts
        else "actions: none configured"
    )
    return Section([clip(line, f.width)])


def notices(f: Frame) -> Section:
    """The gateway's last warnings when its status carries them; else what in the
    status deserves a look (a driver not running, an uplink down, drops)."""
    doc = f.doc
    warnings = doc.get("warnings")
    lines: list[str] = []
    if isinstance(warnings, list):
        title = "last warnings"
        for w in warnings[-8:][::-1]:
            text = f"  {_local_time(w.get('time'))} {w.get('level', '')} {w.get('message', '')}"
            lines.append(clip(text, f.width))
    else:
        title = "notices (this gateway's status carries no log warnings)"
    for d in doc.get("drivers", []):
        if d.get("state") != "running" and f.ui.shows(str(d.get("name"))):
            why = f": {d['last_error']}" if d.get("last_error") else ""
            lines.append(clip(f"  driver {d['name']} {d.get('state')}{why}", f.width))
    for u in doc.get("uplinks", []):
        if not u.get("connected"):
            why = f": {u['last_error']}" if u.get("last_error") else ""
            lines.append(clip(f"  uplink {u['name']} disconnected{why}", f.width))
    pipeline = doc.get("pipeline") or {}
    for key in ("input_rejected", "commit_failures", "memory_drops"):
        if pipeline.get(key):
            lines.append(f"  {key.replace('_', ' ')}: {pipeline[key]}")
    if f.tracker.stream_note:
        lines.append(clip(f"  values: {f.tracker.stream_note}", f.width))
    if not lines:
        lines.append("  none")
    return Section([title, *lines], keep=2)


def _local_time(stamp: object) -> str:
    """HH:MM:SS in this machine's zone, from the document's RFC 3339 UTC time."""
    try:
        return datetime.fromisoformat(str(stamp)).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return "--:--:--"
