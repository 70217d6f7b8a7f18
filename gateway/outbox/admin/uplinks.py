"""``tidegate buffer stats``, several uplinks: per uplink that recorded a position, the
events it still has to send (after its position, routed to it), from the file alone."""

from __future__ import annotations

from sqlite_utils import Database

from tidegate.outbox.admin.listing import packed
from tidegate.outbox.positions import TABLE
from tidegate.outbox.routing import route_topic, routed_to
from tidegate.outbox.schema import CLASS_TABLES
from tidegate.outbox.segment import SegmentDamaged


def uplink_depths(db: Database) -> dict[str, int]:
    """Per uplink in ``uplink_positions``, its undelivered events (a damaged segment
    counts whole for every uplink: its routes are unknown). Empty: one uplink."""
    if TABLE not in db.table_names():
        return {}
    upto: dict[str, list[int]] = {}
    for name, cls, position in db.execute(f"SELECT uplink, cls, upto FROM {TABLE}"):  # noqa: S608
        if 0 <= cls < len(CLASS_TABLES):
            upto.setdefault(name, [0] * len(CLASS_TABLES))[cls] = position
    routes = {
        route_id: routed_to(route_topic(topic))
        for route_id, topic in db.execute("SELECT id, topic FROM routes")
    }
    depths = dict.fromkeys(upto, 0)

    def count(cls: int, row_id: int, route: int | None) -> None:
        routed = routes.get(route) if route is not None else None
        # Routed only to uplinks not among them (removed since): to none, as the gateway
        # drops them at its next start.
        for name, positions in upto.items():
            if row_id > positions[cls] and (routed is None or name in routed):
                depths[name] += 1

    for cls, table in enumerate(CLASS_TABLES):
        for row_id, route in db.execute(f"SELECT id, route_id FROM {table}"):  # noqa: S608
            count(cls, row_id, route)
        for seg in packed(db, cls):
            stored = seg.stored
            try:
                decoded = seg.decode()
            except SegmentDamaged:
                for row_id in range(stored.first, stored.last_id + 1):
                    count(cls, row_id, None)
                continue
            for i in range(stored.first - stored.id, len(decoded)):
                count(cls, stored.id + i, decoded.routes[i])
    return depths
