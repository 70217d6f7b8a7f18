"""The outbox file's schema (version 4). Migrations: ``tidegate.outbox.migrate``.

Events are stored per priority class, so the publisher takes the highest class
first and a full outbox drops from the lowest class first, each with a plain
scan of a primary key. A commit stores the events of one class as one
*segment* (``tidegate.outbox.segment_store``: one row, one insert and one delete
instead of one per event, a fifth of the bytes on disk); an event that must be
handled on its own (dead-lettered, acknowledged out of order) is unpacked into a
row of its class table first. Both hold events
by the same ids: a class's events are the union of the two, in id order::

    segments_high / segments_normal / segments_low
        id        INTEGER PRIMARY KEY  -- the first event's id; the segment holds the
        last_id   INTEGER              -- events id..last_id, every one of them
        accepted, synced, boot_id      -- as the rows' (one commit: one time)
        size      INTEGER              -- the payloads' bytes
        body      BLOB                 -- tidegate.outbox.segment: payloads, route and
                                       -- source ids and a CRC per event, compressed
    segment_positions  id (a segment's), cls, upto: its events up to ``upto`` are
                       delivered (a segment partly acknowledged)
    segments (a view)  the three segment tables (without bodies) with a `priority`

    outbox_high / outbox_normal / outbox_low
        id        INTEGER PRIMARY KEY  -- acceptance order across all classes
        source_id INTEGER              -- sources.id
        route_id  INTEGER              -- routes.id (topic, qos, retain)
        accepted  REAL                 -- wall clock at acceptance (corrected if the clock steps)
        synced    INTEGER              -- 1 if the wall clock was trusted then
        boot_id   INTEGER              -- boots.id: which boot accepted it (clock corrections
                                       -- only apply within one boot)
        payload   BLOB                 -- the event's JSON, exactly as published
        crc       INTEGER              -- CRC32 of payload (signed 32-bit), checked before
                                       -- publishing; NULL only for rows stored before
                                       -- schema 3 (ids below counter crc_from_id)

    outbox (a view)   the three tables with a `priority` column (0 high, 1 normal, 2 low)
    sources           id, source, last_seq   (seq continues across restarts)
    routes            id, topic, qos, retain
    boots             id, boot (the kernel's boot id)
    dead_letters      id, at, stage, reason, source, topic, payload, crc (the CRC the
                      event was stored with: a replay keeps it, so damage stays damage)
    counters          name, value   (drops by reason, corruption recoveries, ...; and
                      bookkeeping: INTERNAL_COUNTERS, among them the file's random id)

``PRAGMA user_version`` is the schema version. Administrative tools (``tidegate
buffer``) may read these tables at any time and may write them while the
gateway runs, inside ``BEGIN IMMEDIATE`` transactions: the gateway re-reads the
highest id at each commit and recounts its statistics periodically.
"""

from __future__ import annotations

from tidegate.priority import PRIORITIES

SCHEMA_VERSION = 4
"""4: segments. 3: ``crc`` per stored event. 2: one table per priority class (migrated
in place)."""

ROW_OVERHEAD = 48
"""Bytes a row costs beyond its payload (ids, timestamps, checksum, b-tree cell): what
``buffer.max_bytes`` counts besides payloads."""


CLASS_TABLES = tuple(f"outbox_{name}" for name in PRIORITIES)
SEGMENT_TABLES = tuple(f"segments_{name}" for name in PRIORITIES)
POSITIONS = "segment_positions"

ADMIN_GENERATION = "admin_generation"
"""Counter an administrative write bumps; the gateway then re-reads its state."""
NEXT_ID = "next_id"
"""Counter: above every row id ever used. A replay takes ids from it, so replayed
rows come after everything the publisher has handed out."""
ACCEPTED_TOTAL = "accepted_total"
"""Counter: events committed over the outbox's whole life (the ledger keeps a copy:
a file behind it lost its tail)."""
MEMORY_APPLIED = "memory_drops_applied"
"""Counter: of the memory drops the ledger noted, how many ``dropped_memory`` holds."""
OUTBOX_ID = "outbox_id"
"""Counter (a constant): a random id given to the file when the gateway first opens it.
Its ledger keeps a copy, so another outbox put in its place is recognised."""
CRC_FROM_ID = "crc_from_id"
"""Counter (a constant): the first row id that must carry a checksum, written when the
file is created at schema 3 or upgraded to it. A NULL ``crc`` is legitimate only below
it (rows stored before checksums); above it, a damaged header byte made it NULL."""
INTERNAL_COUNTERS = frozenset(
    {ADMIN_GENERATION, NEXT_ID, ACCEPTED_TOTAL, MEMORY_APPLIED, OUTBOX_ID, CRC_FROM_ID}
)
"""Counters that are bookkeeping, not drops."""

_CLASS_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL,
    route_id INTEGER NOT NULL,
    accepted REAL NOT NULL,
    synced INTEGER NOT NULL,
    boot_id INTEGER NOT NULL,
    payload BLOB NOT NULL,
    crc INTEGER
);
"""

_SEGMENT_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY,
    last_id INTEGER NOT NULL,
    accepted REAL NOT NULL,
    synced INTEGER NOT NULL,
    boot_id INTEGER NOT NULL,
    size INTEGER NOT NULL,
    body BLOB NOT NULL
);
"""

VIEW = """
CREATE VIEW IF NOT EXISTS outbox AS
    SELECT *, 0 AS priority FROM outbox_high
    UNION ALL SELECT *, 1 AS priority FROM outbox_normal
    UNION ALL SELECT *, 2 AS priority FROM outbox_low;
"""

SCHEMA = (
    "".join(_CLASS_TABLE.format(table=t) for t in CLASS_TABLES)  # noqa: S608 - constant names
    + VIEW
    + "".join(_SEGMENT_TABLE.format(table=t) for t in SEGMENT_TABLES)
    + """
CREATE VIEW IF NOT EXISTS segments AS
    SELECT id, last_id, accepted, synced, boot_id, size, 0 AS priority FROM segments_high
    UNION ALL SELECT id, last_id, accepted, synced, boot_id, size, 1 FROM segments_normal
    UNION ALL SELECT id, last_id, accepted, synced, boot_id, size, 2 FROM segments_low;
"""
    + """
CREATE TABLE IF NOT EXISTS segment_positions (
    id INTEGER PRIMARY KEY,
    cls INTEGER NOT NULL,
    upto INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS routes (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    UNIQUE (topic, qos, retain)
);
CREATE TABLE IF NOT EXISTS boots (
    id INTEGER PRIMARY KEY,
    boot TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT,
    topic TEXT,
    payload BLOB,
    crc INTEGER
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""
)

STATEMENTS = [part.strip() for part in SCHEMA.split(";") if part.strip()]
"""SCHEMA one statement at a time (``executescript`` would commit the caller's
transaction; a migration runs them inside its own)."""
