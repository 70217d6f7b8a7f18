"""The status document: what `tidegate status`, the metrics message and the
Prometheus endpoint report, built from a running ``Gateway``.

``GatewayMonitor.run`` samples the gateway's counters once a second into a
ring of the last minute, so rates are "over the last minute" without the
hot path doing any extra work. The document is plain JSON data (shape in
``GatewayMonitor.status``); ``render_status`` (``tidegate.ops.status_text``)
turns it into the human text.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from tidegate import __version__
from tidegate.ops.status_text import Document, render_status
from tidegate.outbox import UplinkOutbox
from tidegate.priority import PRIORITIES
from tidegate.timefmt import rfc3339

if TYPE_CHECKING:  # the supervisor imports the monitor's users, not the other way round
    from tidegate.pipeline import Gateway
    from tidegate.uplink.publisher import Publisher

__all__ = ["Counters", "Document", "GatewayMonitor", "RateWindow", "render_status"]

RATE_WINDOW = 60
"""Seconds the rates in the status document average over."""


@dataclass(frozen=True, slots=True)
class Counters:
    """The totals rates are computed from; each only ever grows."""

    events_in: int = 0
    accepted: int = 0
    delivered: int = 0
    rule_dropped: int = 0
    outbox_dropped: int = 0
    driver_errors: int = 0

    def minus(self, other: Counters) -> Counters:
        return Counters(*(a - b for a, b in zip(astuple(self), astuple(other), strict=True)))


class RateWindow:
    """A ring of per-second counter samples covering the last ``span`` seconds."""

    def __init__(self, span: int = RATE_WINDOW) -> None:
        self.span = span
        self._samples: deque[tuple[float, Counters]] = deque(maxlen=span + 1)

    def add(self, at: float, counters: Counters) -> None:
        self._samples.append((at, counters))

    def rates(self, now: float, current: Counters) -> Document:
        """Per-second rates from the oldest sample within the span up to ``current``."""
        oldest: tuple[float, Counters] | None = None
        for at, counters in self._samples:
            if now - at <= self.span + 0.5:
                oldest = (at, counters)
                break
        doc: Document = {"window_s": 0.0}
        if oldest is None or now - oldest[0] < 0.5:
            doc.update({f.name: 0.0 for f in fields(Counters)})
            return doc
        elapsed = now - oldest[0]
        delta = current.minus(oldest[1])
        doc["window_s"] = round(elapsed, 1)
        doc.update({f.name: round(getattr(delta, f.name) / elapsed, 3) for f in fields(Counters)})
        return doc


WARNINGS_KEPT = 10
"""Last warnings the status document carries (for `tidegate top`); each cut to 300 characters."""


class RecentWarnings(logging.Handler):
    """The last warnings and errors the gateway logged, as plain data, so the status
    document (and `tidegate top`) can show them without reading the journal."""

    def __init__(self, keep: int = WARNINGS_KEPT) -> None:
        super().__init__(logging.WARNING)
        self.recent: deque[Document] = deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: still worth a line
            message = str(record.msg)
        self.recent.append(
            {
                "time": rfc3339(record.created),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": message[:300],
            }
        )


_RECENT: RecentWarnings | None = None


def recent_warnings() -> RecentWarnings:
    """The process's one ring, on the ``tidegate`` logger from the first monitor on:
    one gateway runs per process, and a ring per monitor would miss the warnings of
    its start-up (the monitor runs once the drivers are up) or pile up handlers."""
    global _RECENT  # noqa: PLW0603 - installed once per process, on purpose
    if _RECENT is None:
        _RECENT = RecentWarnings()
        logging.getLogger("tidegate").addHandler(_RECENT)
    return _RECENT


def _merged(committed: dict[str, int], pending: dict[str, int]) -> dict[str, int]:
    # Copies first: the outbox's thread may change either meanwhile.
    out = dict(committed)
    for name, n in dict(pending).items():
        out[name] = out.get(name, 0) + n
    return out


def _outbox_state(gateway: Gateway) -> str:
    if gateway.outbox.waiting is None:
        return "open"
    return "waiting for disk space" if gateway.outbox.no_space else "not open"


def _age(since: float | None, now: float) -> float | None:
    return None if since is None else round(max(0.0, now - since), 3)


def oldest_accepted(path: Path) -> float | None:
    """Wall-clock acceptance time of the oldest undelivered event, read with a
    separate read-only connection (WAL lets it read beside the writer)."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None
    try:
        row = db.execute(
            "SELECT accepted FROM (SELECT id, accepted FROM outbox UNION ALL "
            "SELECT id, accepted FROM segments) ORDER BY id LIMIT 1"
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return float(row[0]) if row else None


class GatewayMonitor:
    """Reads a running gateway's health and counters into the status document."""

    def __init__(self, gateway: Gateway, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.gateway = gateway
        self.clock = clock
        self.started = clock()
        self.started_wall = time.time()
        self.window = RateWindow()
        self.tail_listeners: Callable[[], int] = lambda: 0
        self.warnings = recent_warnings()
        """Set by the control server: how many `tidegate tail` clients are attached."""

    def counters(self) -> Counters:
        gateway = self.gateway
        ostats = gateway.outbox.stats
        publisher = gateway.publisher
        return Counters(
            events_in=gateway.stats.events_in,
            accepted=ostats.accepted,
            delivered=publisher.status.events_delivered if publisher else 0,
            rule_dropped=sum(s.dropped for s in gateway.rules.stats.values()),
            outbox_dropped=sum(_merged(ostats.drops, ostats.pending_drops).values()),
            driver_errors=sum(d.health.errors for d in gateway.drivers),
        )

    def sample(self) -> None:
        self.window.add(self.clock(), self.counters())

    async def run(self) -> None:
        """Sample once a second until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(1.0)

    async def status(self) -> Document:
        """The status document. Only the oldest event's age needs the database,
        read on a worker thread (and only when the outbox is not empty)."""
        oldest: float | None = None
        # Not while the outbox waits for disk space: even a reader may need to write.
        if self.gateway.outbox.stats.depth > 0 and self.gateway.outbox.waiting is None:
            oldest = await asyncio.to_thread(oldest_accepted, self.gateway.config.outbox_path)
        return self.document(oldest, await self._waiting())

    async def _waiting(self) -> dict[str, int] | None:
        """Per uplink, the events after its position (several uplinks; else the depth)."""
        outbox = self.gateway.outbox
        if outbox.waiting is not None:
            return None
        out: dict[str, int] = {}
        for publisher in self.gateway.publishers:
            view = publisher.outbox
            if isinstance(view, UplinkOutbox):
                out[publisher.name] = await view.waiting()
            else:
                out[publisher.name] = outbox.stats.depth
        return out

    def document(
        self, oldest_accepted_at: float | None = None, waiting: dict[str, int] | None = None
    ) -> Document:
        gateway = self.gateway
        now = self.clock()
        wall = time.time()
        ostats = gateway.outbox.stats
        uplinks = [
            _uplink(p, now, None if waiting is None else waiting.get(p.name))
            for p in gateway.publishers
        ]
        broker: Document = {"configured": bool(uplinks)}
        if uplinks:
            broker.update({k: v for k, v in uplinks[0].items() if k not in ("name", "waiting")})
        return {
            "version": __version__,
            "gateway": gateway.config.gateway.id,
            "pid": os.getpid(),
            "started": rfc3339(self.started_wall),
            "uptime_s": round(now - self.started, 3),
            "drivers": [
                {
                    "name": d.name,
                    "type": d.config.type,
                    "state": str(d.health.state),
                    "state_since_s": _age(d.health.since_monotonic, now),
                    "events": d.health.events,
                    "errors": d.health.errors,
                    "last_error": d.health.last_error,
                    "last_event_age_s": _age(d.health.last_event_monotonic, now),
                    "counters": dict(sorted(d.health.counters.items())),
                    "devices": {
                        label: {
                            "stale": device.stale,
                            "last_error": device.last_error,
                            "last_seen_age_s": _age(device.last_seen_monotonic, now),
                        }
                        for label, device in sorted(d.health.devices.items())
                    },
                }
                for d in gateway.drivers
            ],
            "rules": [
                {
                    "name": name,
                    "in": s.matched,
                    "out": s.out,
                    "dropped": s.dropped,
                    "filtered": s.filtered,
                    "dead_lettered": s.dead_lettered,
                    "errors": s.errors,
                }
                for name, s in gateway.rules.stats.items()
            ],
            "pipeline": {
                "events_in": gateway.stats.events_in,
                "input_rejected": gateway.stats.input_rejected,
                "commit_failures": gateway.stats.commit_failures,
                "memory_drops": gateway.stats.memory_drops,
            },
            "outbox": {
                "path": str(gateway.config.outbox_path),
                "state": _outbox_state(gateway),
                # Why it is not open; while it is not, the figures are the ledger's (the
                # last run's), and events are held in memory.
                "not_open": gateway.outbox.waiting,
                "held_in_memory": gateway.held_in_memory,
                "depth": ostats.depth,
                "bytes": ostats.bytes,
                "oldest_age_s": (
                    None
                    if oldest_accepted_at is None or ostats.depth == 0
                    else round(max(0.0, wall - oldest_accepted_at), 3)
                ),
                "accepted": ostats.accepted,
                "acked": ostats.acked,
                # Counted means visible at once: drops not yet committed (a full disk)
                # are included, and listed apart in dropped_pending.
                "dropped": _merged(ostats.drops, ostats.pending_drops),
                "dropped_pending": dict(ostats.pending_drops),  # a copy, at once
                "lost_in_recovery": ostats.lost_in_recovery,
                "delete_pending": ostats.undeleted,
                "recovery": None if ostats.recovery is None else ostats.recovery.as_json(),
                "depth_by_priority": dict(zip(PRIORITIES, ostats.depth_by_priority, strict=True)),
                "max_bytes": ostats.max_bytes,
                "dead_letters": ostats.dead_letters,
            },
            "broker": broker,
            "uplinks": uplinks,
            "history": None
            if gateway.history is None
            else {
                "path": str(gateway.history.store.path),
                "flushes": gateway.history.flushes,
                "dropped": gateway.history.dropped,
            },
            "actions": {} if gateway.actions is None else gateway.actions.status(),
            "commands": None if gateway.commands is None else gateway.commands.status(),
            "rates": self.window.rates(now, self.counters()),
            "tail_clients": self.tail_listeners(),
            "warnings": list(self.warnings.recent),
        }


def _uplink(publisher: Publisher, now: float, waiting: int | None) -> Document:
    """One uplink in the status document."""
    pstatus = publisher.status
    mqtt = publisher.mqtt
    return {
        "name": publisher.name,
        "address": pstatus.broker or f"{mqtt.host}:{mqtt.effective_port}",
        "connected": pstatus.connected,
        "since_s": _age(pstatus.since, now),
        "last_error": pstatus.last_error,
        "inflight": pstatus.inflight,
        "connects": pstatus.connects,
        "delivered": pstatus.events_delivered,
        "rejected": pstatus.events_rejected,
        "expired": pstatus.events_expired,
        "too_old": pstatus.events_too_old,
        "quota_exceeded": pstatus.quota_exceeded,
        "waiting": waiting,
    }
