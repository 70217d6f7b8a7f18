"""The human text of `tidegate status`: the status document as a screenful.

Light on purpose (no gateway, no outbox): `tidegate status` imports it and the
control client, nothing else of the runtime.
"""

from __future__ import annotations

from typing import Any

from tidegate.wording import count, duration, noun, size

Document = dict[str, Any]
"""The status document: plain JSON data (shape in ``tidegate.ops.status``)."""


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]


def _driver_details(drivers: list[dict[str, Any]]) -> list[str]:
    """Per driver, its own counters and its devices that do not answer (older
    documents have neither: a newer client may talk to an older gateway)."""
    lines: list[str] = []
    for d in drivers:
        counters = d.get("counters") or {}
        if counters:
            tallies = " · ".join(f"{name} {n}" for name, n in counters.items())
            lines.append(f"  {d['name']}: {tallies}")
        for label, device in (d.get("devices") or {}).items():
            if device["stale"]:
                seen = device["last_seen_age_s"]
                since = "never answered" if seen is None else f"last answer {duration(seen)} ago"
                lines.append(
                    f"  {d['name']} {label}: STALE ({since}) · {device['last_error'] or '-'}"
                )
    return lines


def render_status(doc: Document) -> str:
    """The document as a screenful of text."""
    rates = doc["rates"]
    lines = [
        f"tidegate {doc['version']} · gateway {doc['gateway']} · up {duration(doc['uptime_s'])}"
        f" · pid {doc['pid']}",
        f"last {rates['window_s']:.0f} s: in {rates['events_in']:.1f}/s · accepted "
        f"{rates['accepted']:.1f}/s · delivered {rates['delivered']:.1f}/s · dropped "
        f"{rates['rule_dropped'] + rates['outbox_dropped']:.1f}/s",
        "",
        "drivers",
    ]
    lines += _table(
        ["NAME", "TYPE", "STATE", "EVENTS", "ERRORS", "LAST EVENT", "LAST ERROR"],
        [
            [
                d["name"],
                d["type"],
                d["state"]
                + ("" if d["state"] == "running" else f" ({duration(d['state_since_s'])})"),
                str(d["events"]),
                str(d["errors"]),
                "never"
                if d["last_event_age_s"] is None
                else f"{duration(d['last_event_age_s'])} ago",
                d["last_error"] or "-",
            ]
            for d in doc["drivers"]
        ],
    )
    lines += _driver_details(doc["drivers"])
    lines += ["", "rules"]
    lines += _table(
        ["NAME", "IN", "OUT", "DROPPED", "FILTERED", "DEAD LETTERS"],
        [
            [r["name"], *(str(r[k]) for k in ("in", "out", "dropped", "filtered", "dead_lettered"))]
            for r in doc["rules"]
        ],
    )
    outbox = doc["outbox"]
    drops = outbox["dropped"]
    dropped = ", ".join(f"{reason} {n}" for reason, n in drops.items()) if drops else "none"
    pending = sum(outbox.get("dropped_pending", {}).values())
    if pending:
        dropped += f" ({pending} not yet committed: the disk is full)"
    oldest = outbox["oldest_age_s"]
    state = outbox.get("state", "open")
    lines += [
        "",
        f"outbox  {outbox['path']}" + ("" if state == "open" else f"  ({state.upper()})"),
        f"  {count(outbox['depth'], 'event')} · {size(outbox['bytes'])} · oldest "
        f"{'-' if oldest is None else duration(oldest)} · dropped: {dropped} · dead letters "
        f"{outbox['dead_letters']}",
    ]
    if outbox.get("not_open"):
        lines.append(
            f"  {state}: {outbox['not_open']}; {count(outbox.get('held_in_memory', 0), 'event')} "
            "held in memory meanwhile (figures above as the last run left them)"
        )
    waiting = outbox.get("delete_pending", 0)
    if waiting:
        lines.append(
            f"  {count(waiting, 'delivered event')} {noun(waiting, 'waits', 'wait')} to be "
            f"deleted (a full disk); {noun(waiting, 'it is', 'they are')} not sent again"
        )
    if outbox.get("recovery"):
        lines.append(f"  at start: {outbox['recovery']['message']}")
    broker = doc["broker"]
    uplinks = doc.get("uplinks") or []
    if not broker["configured"]:
        lines += ["", "broker  none configured: events are only kept in the outbox"]
    elif len(uplinks) > 1:
        lines.append("")
        for uplink in uplinks:
            lines += _uplink_lines(uplink)
    else:
        state = "connected" if broker["connected"] else "disconnected"
        lines += [
            "",
            f"broker  {broker['address']}",
            f"  {state} for {duration(broker['since_s'])} · in flight {broker['inflight']} · "
            f"delivered {broker['delivered']} · last error: {broker['last_error'] or '-'}",
        ]
    return "\n".join(lines + _two_way_lines(doc))


def _refusals(refused: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(refused.items())) or "none"


def _two_way_lines(doc: Document) -> list[str]:
    """The actions (one line each) and the commands from the cloud, where configured."""
    lines: list[str] = []
    actions = doc.get("actions") or {}
    if actions:
        lines += ["", "actions"]
        for name, a in actions.items():
            dropped = f" · {a['dropped_queue_full']} dropped" if a["dropped_queue_full"] else ""
            lines.append(
                f"  {name}: {a['does']} · done {a['done']} · failed {a['failed']} · refused "
                f"{_refusals(a['refused'])}{dropped} · last: {a['last'] or '-'}"
            )
    commands = doc.get("commands")
    if commands:
        lines += [
            "",
            f"commands  {', '.join(commands['allowed']) or 'none allowed'}",
            f"  received {commands['received']} · done {commands['done']} · failed "
            f"{commands['failed']} · repeated {commands['repeated']} · refused "
            f"{_refusals(commands['refused'])}"
            + (
                f" · dropped {commands['dropped']} (too many at once)"
                if commands["dropped"]
                else ""
            ),
        ]
    return lines


def _uplink_lines(uplink: Document) -> list[str]:
    """One of several uplinks: where, its state, and what waits for it."""
    state = "connected" if uplink["connected"] else "disconnected"
    waiting = uplink.get("waiting")
    dropped = [
        f"{uplink[key]} {what}"
        for key, what in (("rejected", "rejected"), ("expired", "expired"), ("too_old", "too old"))
        if uplink.get(key)
    ]
    return [
        f"uplink {uplink['name']}  {uplink['address']}",
        f"  {state} for {duration(uplink['since_s'])} · in flight {uplink['inflight']} · "
        f"delivered {uplink['delivered']} · waiting {'?' if waiting is None else waiting}"
        + "".join(f" · {d}" for d in dropped)
        + f" · last error: {uplink['last_error'] or '-'}",
    ]
