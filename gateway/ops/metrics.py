"""Metrics for a fleet: a message on ``<prefix>/metrics`` every interval, and
an optional Prometheus text endpoint.

The message is the status document (see ``tidegate.ops.status``) plus ``time``:
the same counters and gauges `tidegate status --json` shows, so one parser
serves both. It goes out through the gateway's own MQTT connection (the
``publish`` callable), QoS 0 and not retained: a metrics message is only
worth something while it is fresh, so it is skipped (and counted) while the
broker is away rather than stored in the outbox. The retained
``<prefix>/status`` online/offline message says whether a gateway is alive.

The Prometheus endpoint speaks just enough HTTP/1.0 for a scraper:
``GET /metrics``, one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from tidegate.errors import TidegateError
from tidegate.ops.config import MetricsSection, PrometheusSection
from tidegate.ops.exposition import Exposition
from tidegate.ops.status import Document, GatewayMonitor
from tidegate.timefmt import rfc3339

log = logging.getLogger(__name__)

PublishMessage = Callable[[str, bytes, int, bool], bool]
"""``publish(topic, payload, qos, retain)`` on the gateway's broker connection;
returns False (without raising) when it is not connected."""

HTTP_TIMEOUT = 5.0
MAX_REQUEST_HEAD = 8192


class MetricsError(TidegateError):
    """The Prometheus endpoint could not listen."""


class MetricsReporter:
    """Publishes the status document every ``interval`` seconds."""

    def __init__(
        self, monitor: GatewayMonitor, publish: PublishMessage, topic: str, interval: float
    ) -> None:
        self.monitor = monitor
        self.publish = publish
        self.topic = topic
        self.interval = interval
        self.published = 0
        self.skipped = 0
        """Intervals whose message was not sent because the broker was not connected."""

    @classmethod
    def from_config(
        cls, section: MetricsSection, monitor: GatewayMonitor, publish: PublishMessage, prefix: str
    ) -> MetricsReporter | None:
        if not section.publish:
            return None
        return cls(monitor, publish, f"{prefix}/metrics", section.interval)

    async def publish_once(self) -> bool:
        doc = await self.monitor.status()
        payload = orjson.dumps({"time": rfc3339(time.time()), **doc})
        if self.publish(self.topic, payload, 0, False):
            self.published += 1
            return True
        self.skipped += 1
        return False

    async def run(self) -> None:
        """Publish every interval (the first after one interval) until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.publish_once()
            except Exception:  # a metrics bug must not stop the gateway
                log.exception("could not publish metrics")


# -- Prometheus text format ------------------------------------------------------------------


def prometheus_text(doc: Document) -> str:
    """The status document in Prometheus text exposition format 0.0.4."""
    out = Exposition()
    out.family(
        "info",
        "gauge",
        "Version and id of this gateway (always 1).",
        iter([({"version": doc["version"], "gateway": doc["gateway"]}, 1)]),
    )
    out.one("uptime_seconds", "gauge", "Seconds since the gateway started.", doc["uptime_s"])
    pipeline = doc["pipeline"]
    out.one("events_in_total", "counter", "Events drivers emitted.", pipeline["events_in"])
    out.one(
        "input_rejected_total",
        "counter",
        "Raw input that could not become an event.",
        pipeline["input_rejected"],
    )
    drivers = doc["drivers"]
    by_driver = [({"driver": d["name"]}, d) for d in drivers]
    out.family(
        "driver_up",
        "gauge",
        "1 while the driver's device is open and running.",
        iter((lbl, int(d["state"] == "running")) for lbl, d in by_driver),
    )
    out.family(
        "driver_events_total",
        "counter",
        "Events the driver emitted.",
        iter((lbl, d["events"]) for lbl, d in by_driver),
    )
    out.family(
        "driver_errors_total",
        "counter",
        "Errors the driver met (and survived).",
        iter((lbl, d["errors"]) for lbl, d in by_driver),
    )
    out.family(
        "driver_last_event_age_seconds",
        "gauge",
        "Seconds since the driver's last event.",
        iter((lbl, d["last_event_age_s"]) for lbl, d in by_driver),
    )
    out.family(
        "driver_counter_total",
        "counter",
        "Driver-specific tallies (device time used, clock fallbacks, Modbus exceptions, …).",
        iter(
            ({"driver": d["name"], "counter": name}, n)
            for d in drivers
            for name, n in (d.get("counters") or {}).items()
        ),
    )
    out.family(
        "driver_device_up",
        "gauge",
        "1 while a device behind a driver answers, 0 while it is stale.",
        iter(
            ({"driver": d["name"], "device": label}, int(not device["stale"]))
            for d in drivers
            for label, device in (d.get("devices") or {}).items()
        ),
    )
    by_rule = [({"rule": r["name"]}, r) for r in doc["rules"]]
    out.family(
        "rule_in_total",
        "counter",
        "Events the rule matched.",
        iter((lbl, r["in"]) for lbl, r in by_rule),
    )
    out.family(
        "rule_out_total",
        "counter",
        "Events the rule passed on.",
        iter((lbl, r["out"]) for lbl, r in by_rule),
    )
    out.family(
        "rule_dropped_total",
        "counter",
        "Events the rule dropped.",
        iter((lbl, r["dropped"]) for lbl, r in by_rule),
    )
    outbox = doc["outbox"]
    # Not open (a full disk, say): the gateway runs on, holding events in memory, and
    # the outbox figures below are the ledger's. Alert on these, not on an exit.
    state = outbox.get("state", "open")
    out.one("outbox_open", "gauge", "1 while the outbox file is open.", int(state == "open"))
    out.one(
        "outbox_waiting_for_disk_space",
        "gauge",
        "1 while the outbox cannot open for lack of disk space (the gateway waits for room).",
        int(state == "waiting for disk space"),
    )
    out.one(
        "outbox_held_in_memory",
        "gauge",
        "Events held in memory waiting for a commit (many while the outbox is not open).",
        outbox.get("held_in_memory", 0),
    )
    out.one("outbox_events", "gauge", "Events waiting in the outbox.", outbox["depth"])
    out.family(
        "outbox_events_by_priority",
        "gauge",
        "Events waiting in the outbox, by priority class.",
        iter(({"priority": k}, v) for k, v in outbox["depth_by_priority"].items()),
    )
    out.one(
        "outbox_bytes", "gauge", "Bytes the outbox holds (what max_bytes bounds).", outbox["bytes"]
    )
    out.one("outbox_max_bytes", "gauge", "The outbox's bound in force.", outbox["max_bytes"])
    out.one(
        "outbox_oldest_age_seconds",
        "gauge",
        "Age of the oldest waiting event.",
        outbox["oldest_age_s"],
    )
    out.one(
        "outbox_accepted_total", "counter", "Events committed to the outbox.", outbox["accepted"]
    )
    out.one(
        "outbox_dead_letters", "gauge", "Rows in the dead-letter table.", outbox["dead_letters"]
    )
    out.family(
        "outbox_dropped_total",
        "counter",
        "Events the outbox dropped or lost (and recoveries), by reason; includes drops "
        "not yet committed.",
        iter(({"reason": k}, v) for k, v in outbox["dropped"].items()),
    )
    out.family(
        "outbox_dropped_pending",
        "gauge",
        "Drops counted but not yet committed to the outbox file (a full disk), by reason.",
        iter(({"reason": k}, v) for k, v in outbox["dropped_pending"].items()),
    )
    out.one(
        "outbox_delete_pending",
        "gauge",
        "Delivered events whose delete failed so far (a full disk); never sent again.",
        outbox["delete_pending"],
    )
    out.one(
        "outbox_lost_in_recovery_total",
        "counter",
        "Events lost to a damaged, emptied or cut outbox file, found at start.",
        outbox["lost_in_recovery"],
    )
    broker = doc["broker"]
    if broker["configured"]:
        out.one(
            "broker_connected",
            "gauge",
            "1 while connected to the broker.",
            int(broker["connected"]),
        )
        out.one(
            "broker_inflight_messages",
            "gauge",
            "Messages sent but not yet acknowledged.",
            broker["inflight"],
        )
        out.one(
            "broker_delivered_total",
            "counter",
            "Events the broker acknowledged.",
            broker["delivered"],
        )
        out.one(
            "broker_connects_total",
            "counter",
            "Successful connections to the broker.",
            broker["connects"],
        )
        out.one(
            "broker_rejected_total",
            "counter",
            "Events the broker refused, or that no message could carry (too large, or not "
            "writable in the uplink's format): moved to the dead letters.",
            broker["rejected"],
        )
        out.one(
            "broker_quota_exceeded_total",
            "counter",
            "PUBACKs saying quota exceeded: the message stays in the outbox and is sent again.",
            broker["quota_exceeded"],
        )
    uplinks = doc.get("uplinks") or []
    if len(uplinks) > 1:
        _uplink_families(out, uplinks)
    _two_way_families(out, doc)
    return "\n".join(out.lines) + "\n"


def _outcomes(name: str, counts: Document) -> Iterator[tuple[dict[str, str], Any]]:
    yield {**({"action": name} if name else {}), "outcome": "done"}, counts["done"]
    yield {**({"action": name} if name else {}), "outcome": "failed"}, counts["failed"]
    for reason, n in sorted(counts["refused"].items()):
        yield {**({"action": name} if name else {}), "outcome": "refused", "reason": reason}, n


def _two_way_families(out: Exposition, doc: Document) -> None:
    """Actions taken and commands taken, by outcome (and refusal reason)."""
    actions = doc.get("actions") or {}
    out.family(
        "actions_total",
        "counter",
        "Action calls by action and outcome (done, failed, refused with its reason).",
        (sample for name, a in actions.items() for sample in _outcomes(name, a)),
    )
    commands = doc.get("commands")
    if commands:
        out.family(
            "commands_total",
            "counter",
            "Commands from the cloud by outcome (done, failed, refused with its reason).",
            _outcomes("", commands),
        )
        out.one(
            "commands_repeated_total",
            "counter",
            "Repeated command ids answered again.",
            commands["repeated"],
        )
        out.one(
            "commands_dropped_total",
            "counter",
            "Commands dropped unread: too many were in hand at once.",
            commands["dropped"],
        )


UPLINK_FAMILIES = (
    ("connected", "uplink_connected", "gauge", "1 while the uplink is connected."),
    ("delivered", "uplink_delivered_total", "counter", "Events the uplink's broker acknowledged."),
    ("rejected", "uplink_rejected_total", "counter", "Events the uplink could not send."),
    ("waiting", "uplink_waiting_events", "gauge", "Events stored after the uplink's position."),
)
"""Several uplinks: the broker figures per uplink (``broker_*`` are the first's)."""


def _uplink_families(out: Exposition, uplinks: list[Document]) -> None:
    for key, name, kind, text in UPLINK_FAMILIES:
        out.family(name, kind, text, iter(({"uplink": u["name"]}, u[key]) for u in uplinks))


class PrometheusEndpoint:
    """``GET /metrics`` on a TCP port; 127.0.0.1 unless configured otherwise."""

    def __init__(self, monitor: GatewayMonitor, host: str, port: int) -> None:
        self.monitor = monitor
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    @classmethod
    def from_config(
        cls, section: PrometheusSection | None, monitor: GatewayMonitor
    ) -> PrometheusEndpoint | None:
        return None if section is None else cls(monitor, section.host, section.port)

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, limit=MAX_REQUEST_HEAD
            )
        except OSError as exc:
            raise MetricsError(
                f"cannot serve Prometheus metrics on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]  # the real one when 0 was asked
        log.info("Prometheus metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HTTP_TIMEOUT)
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            target = rest.split(" ", 1)[0]
            if method not in ("GET", "HEAD"):
                status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
            elif target.split("?", 1)[0] != "/metrics":
                status, body, kind = "404 Not Found", b"try /metrics\n", "text/plain"
            else:
                text = prometheus_text(await self.monitor.status())
                status, body = "200 OK", text.encode()
                kind = "text/plain; version=0.0.4"
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {kind}; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (b"" if method == "HEAD" else body)
            )
            await writer.drain()
        except (
            ConnectionError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # a scraper that went away or sent garbage: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
